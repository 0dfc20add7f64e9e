"""Where the project's own files are: the checkout this package runs from (installed editable)."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_PACKAGE = PROJECT_ROOT / "plugins" / "module_utils" / "collector"
REACHABILITY_PATH = PROJECT_ROOT / "plugins" / "module_utils" / "reachability.py"
CATALOG_DIR = PROJECT_ROOT / "compliance"
TURN_CLIENT_PATH = PROJECT_ROOT / "plugins" / "module_utils" / "turn.py"
# coturn's telnet dependency, satisfied without a telnet client: the role installs it, and so does the lab image.
TELNET_CLIENT_STUB_CONTROL = PROJECT_ROOT / "roles" / "rtc_relay" / "files" / "telnet-client-stub.control"
