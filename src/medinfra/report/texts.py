"""Texts every report format writes the same way: evidence excerpts and waiver notes (English)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from medinfra.compliance.model import Waiver
from medinfra.safe_text import clean

# One encoder for every evidence excerpt: json.dumps would build a new encoder per call (60,000 calls a run).
EVIDENCE_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def evidence_text(evidence: Mapping[str, Any]) -> str:
    """The evidence excerpt of a finding as compact JSON, the same text in every format, cleaned (it is a host's)."""
    return clean(EVIDENCE_ENCODER.encode(evidence))


def waiver_note(waiver: Waiver) -> str:
    return (
        f"waived until {waiver.expires.isoformat()} by {waiver.approver}: {waiver.risk_acceptance} "
        f"(residual risk {waiver.risk}; compensating control: {waiver.compensating_control})"
    )


def expired_note(waiver: Waiver) -> str:
    return f"a waiver approved by {waiver.approver} expired on {waiver.expires.isoformat()}: renew it or fix the host"
