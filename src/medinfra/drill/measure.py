"""What a failover drill achieved, from the heartbeats' attempt log (pure; times in the service host's clock).

- RTO achieved: write unavailability, from the last acknowledged heartbeat before the outage to the first one
  acknowledged after it (acknowledgement times). The outage is the longest such gap that ends after the failure
  was made (`failed_at`), so a slow attempt before the drill does not count as it.
- RPO achieved: 0 when every acknowledged heartbeat is on the new leader; else the time span of the acknowledged
  heartbeats it lacks, from the first one's sending to the last one's acknowledgement: the writes that clients
  were told were safe and that are gone.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Attempt:
    seq: int
    sent: float
    done: float
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class Measurement:
    attempts: int
    acknowledged: int
    lost: tuple[int, ...]  # seqs acknowledged but missing on the new leader
    rto_seconds: float | None  # None: no acknowledged heartbeat after the failure
    rpo_seconds: float
    outage_from: float | None  # acknowledgement time of the last heartbeat before the outage
    outage_to: float | None  # and of the first after it


def parse_attempts(records: Iterable[Mapping[str, Any]]) -> list[Attempt]:
    """Attempts from the heartbeat program's records; ValueError naming the first that is not one."""
    attempts = []
    for index, record in enumerate(records):
        try:
            attempts.append(Attempt(int(record["seq"]), float(record["sent"]), float(record["done"]),
                                    bool(record["ok"]), None if record.get("error") is None else str(record["error"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"heartbeat attempt {index}: {exc!r} in {dict(record)!r}") from None
    return sorted(attempts, key=lambda attempt: attempt.seq)


def outage(attempts: Iterable[Attempt], failed_at: float) -> tuple[float, float] | None:
    """(last acknowledgement before, first after) the longest write gap that ends after `failed_at`."""
    acknowledged = sorted(attempt.done for attempt in attempts if attempt.ok)
    gaps = [(after - before, before, after) for before, after in itertools.pairwise(acknowledged)
            if after > failed_at]
    if not gaps:
        return None
    _, before, after = max(gaps)
    return before, after


def measure(attempts: Iterable[Attempt], present: Collection[int], failed_at: float) -> Measurement:
    """The drill's figures from its attempts and the seqs the new leader holds after the failover."""
    attempts = list(attempts)
    acknowledged = [attempt for attempt in attempts if attempt.ok]
    kept = set(present)
    lost = [attempt for attempt in acknowledged if attempt.seq not in kept]
    rpo = max(a.done for a in lost) - min(a.sent for a in lost) if lost else 0.0
    window = outage(attempts, failed_at)
    return Measurement(
        attempts=len(attempts),
        acknowledged=len(acknowledged),
        lost=tuple(attempt.seq for attempt in lost),
        rto_seconds=None if window is None else round(window[1] - window[0], 3),
        rpo_seconds=round(rpo, 3),
        outage_from=None if window is None else window[0],
        outage_to=None if window is None else window[1],
    )
