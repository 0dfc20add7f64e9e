"""medinfra fix: from an audit's failures to repaired hosts, proven by a re-audit."""
