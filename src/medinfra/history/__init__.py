"""History of audit runs (SQLite or PostgreSQL) and what changed between two runs."""

from medinfra.history.diff import Change, HostChange, RunDiff, ScoreChange, diff_runs, diff_text
from medinfra.history.store import HistoryStore, RunInfo, default_history_location, open_history

__all__ = [
    "Change",
    "HistoryStore",
    "HostChange",
    "RunDiff",
    "RunInfo",
    "ScoreChange",
    "default_history_location",
    "diff_runs",
    "diff_text",
    "open_history",
]
