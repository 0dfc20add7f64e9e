"""Exit codes of medinfra's commands, and what each means for an audit (its --help and JSON summary say it)."""

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
# EXIT_UNREACHABLE: the run is incomplete: some hosts were not audited, or it could not be recorded in the history.
AUDIT_EXITS = {
    EXIT_OK: "every applicable control passes or is waived",
    EXIT_FAILURES: "failures or errors",
    EXIT_USAGE: "bad input (no host was contacted)",
    EXIT_UNREACHABLE: "some hosts were not audited, or the run could not be recorded in the history "
    "(the reports are written all the same)",
}
