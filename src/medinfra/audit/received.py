"""What a host sent back, made safe before medinfra keeps or shows any of it.

A host is not trusted: its text (stderr, an error, the evidence itself) may repeat a secret medinfra gave it (an
SSH or become password), carry terminal escape sequences that paint fake lines on the auditor's screen, or be
far larger and deeper than any evidence the collector writes. Both transports (pyinfra's and the Ansible
playbook's) build every HostResult here, so what is stored, printed and judged is bounded, redacted and cleaned
in one place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from medinfra.audit.results import HostResult
from medinfra.safe_text import cleaned, one_line, redact

# The collector writes about 150 KB for a Debian server; 8 MiB leaves room for the largest hosts (thousands of
# packages and units) and bounds what a hostile host can make the auditor hold, store and judge.
OUTPUT_LIMIT = 8 * 2**20
# The collector's documents nest about 8 deep; deeper is no evidence, and would exhaust the recursion of every
# reader of it (the JSON encoder, the cleaner, the evaluator).
DEPTH_LIMIT = 32
# The end of stderr is kept (where a traceback says what went wrong); a hostile host may send any amount of it.
STDERR_KEPT = 64 * 1024
CHUNK = 64 * 1024
# A reason is one line: its start (what failed) and its end (where a traceback says why).
REASON_HEAD, REASON_TAIL = 100, 300


def safe_reason(text: str, secrets: Iterable[str]) -> str:
    """`text` for one line of a report or terminal: secrets redacted (before anything is cut, so no part of one
    survives), control characters escaped, the middle of a long text left out."""
    line = one_line(redact(text, secrets))
    if len(line) <= REASON_HEAD + REASON_TAIL:
        return line
    return f"{line[:REASON_HEAD]} … {line[-REASON_TAIL:]}"


def too_deep(value: Any, limit: int = DEPTH_LIMIT) -> bool:
    """Whether a JSON value nests more than `limit` levels (checked without recursion)."""
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            pending.extend((item, depth + 1) for item in (node.values() if isinstance(node, dict) else node))
    return False


def evidence_problem(evidence: Any) -> str:
    """Why `evidence` cannot be judged as a host's document, or "" when it can."""
    if not isinstance(evidence, dict):
        return "collector output is not a JSON object"
    if too_deep(evidence):
        return f"collector output nests deeper than {DEPTH_LIMIT} levels"
    size = len(json.dumps(evidence))
    if size > OUTPUT_LIMIT:
        return f"collector output is {size} characters of JSON, over the limit of {OUTPUT_LIMIT}"
    return ""


def host_result(
    host: str, status: str, reason: str, evidence: Any, seconds: float, secrets: Iterable[str]
) -> HostResult:
    """The one way a transport records what a host gave: evidence bounded, both evidence and reason redacted of
    `secrets` (the host's SSH and become passwords) and cleaned. Evidence that fails the bounds makes the host
    an `error` with the reason why."""
    known = tuple(s for s in secrets if s)
    if status == "audited":
        problem = evidence_problem(evidence)
        if problem:
            return HostResult(host, "error", safe_reason(problem, known), None, seconds)
        return HostResult(host, status, "", cleaned(evidence, known), seconds)
    return HostResult(host, status, safe_reason(reason, known), None, seconds)


@dataclass(frozen=True)
class ProgramOutput:
    """What the program on a host wrote, as read: at most OUTPUT_LIMIT bytes of stdout, the end of stderr."""

    stdout: bytes
    stderr: bytes
    exit_status: int
    over_limit: bool = False  # stdout went on past OUTPUT_LIMIT and was not read further
    stderr_cut: bool = False  # stderr is the end of a longer text


def read_bounded(receive: Callable[[int], bytes], limit: int) -> tuple[bytes, bool]:
    """A stream read to its end, or its first `limit` bytes and True when it goes on past them."""
    chunks: list[bytes] = []
    size = 0
    while chunk := receive(CHUNK):
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


def read_tail(receive: Callable[[int], bytes], keep: int) -> tuple[bytes, bool]:
    """The end of a stream read to its end (at most `keep` bytes, from a line start: a line cut in two could
    leave part of a secret that redaction no longer recognises), and whether anything before it was left out."""
    tail, cut = b"", False
    while chunk := receive(CHUNK):
        tail += chunk
        if len(tail) > keep:
            tail, cut = tail[-keep:], True
    return (tail.partition(b"\n")[2], True) if cut else (tail, False)


def parse_output(output: ProgramOutput) -> tuple[Any, str]:
    """The document the program printed (any JSON value), or None and why there is none."""
    exit_note = "" if output.exit_status == 0 else f" (collector exited with status {output.exit_status})"
    if output.over_limit:
        return None, f"collector output goes on past the limit of {OUTPUT_LIMIT} bytes; not read further"
    try:
        return json.loads(output.stdout.decode("utf-8")), ""
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past the parser's recursion
        stderr = one_text(output.stderr)
        shown = f"… {stderr}".rstrip() if output.stderr_cut else stderr or one_text(output.stdout) or "no output"
        return None, f"collector printed no JSON document: {shown}{exit_note}"


def one_text(output: bytes) -> str:
    """Output as one text, its lines joined by spaces (bytes that are not UTF-8 shown as U+FFFD)."""
    return output.decode("utf-8", "replace").rstrip("\n").replace("\n", " ")


def program_result(host: str, output: ProgramOutput, seconds: float, secrets: Iterable[str]) -> HostResult:
    """The HostResult of what the program (the collector) wrote on a host."""
    document, problem = parse_output(output)
    status = "error" if document is None else "audited"
    return host_result(host, status, problem, document, seconds, secrets)
