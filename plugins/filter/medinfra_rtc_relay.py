"""Filters for role rtc_relay (logic in plugins/module_utils/turn.py, shared with the relay's probe)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from medinfra.turn import turn_module

DOCUMENTATION = r"""
name: medinfra_turn_range
short_description: A network as coturn's denied-peer-ip / allowed-peer-ip value
description:
  - coturn 4.6.1 takes one address or C(first-last), no prefix lengths; this turns C(10.0.0.0/8) into
    C(10.0.0.0-10.255.255.255) and C(10.231.40.20) into itself.
options:
  _input: {description: an IPv4 or IPv6 address or network, type: str, required: true}
"""


def medinfra_turn_range(network: str) -> str:
    try:
        return str(turn_module().network_range(str(network)))
    except ValueError as exc:
        raise AnsibleFilterError(f"medinfra_turn_range: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"medinfra_turn_range": medinfra_turn_range}
