#!/usr/bin/env bash
# `make test-unit`: the unit tests in as many pytest processes as there are cores, each running a shard of them
# (tests/conftest.py's --shard). Processes, not pytest-xdist workers: the audit's transport patches the standard
# library for gevent when it is imported, which breaks xdist's channel to its workers.
# Each shard runs under coverage (pyproject.toml's [tool.coverage.*]: src/medinfra and plugins/, subprocesses of
# this Python included); the end prints the total and the pure core's figures, module by module. COVERAGE=0 runs
# without it. `coverage report -m` (or `coverage html`) afterwards shows the lines missed.
set -uo pipefail
shards=${SHARDS:-$(nproc)}
measure=${COVERAGE:-1}
# The pure core: the code that judges evidence and writes the signed evidence formats, with no host, network or
# process of its own; the figure it must keep is PURE_CORE_MINIMUM percent.
PURE_CORE=(
  src/medinfra/compliance/checks.py
  src/medinfra/compliance/evaluate.py
  src/medinfra/compliance/firewall.py
  src/medinfra/compliance/lynis.py
  src/medinfra/compliance/model.py
  src/medinfra/exits.py
  src/medinfra/fix/next_steps.py
  src/medinfra/history/diff.py
  src/medinfra/report/csv_export.py
  src/medinfra/report/findings_file.py
  src/medinfra/report/junit.py
  src/medinfra/report/model.py
  src/medinfra/report/oscal.py
  src/medinfra/report/poam.py
  src/medinfra/safe_text.py
  src/medinfra/segmentation/rules.py
  src/medinfra/signing.py
  src/medinfra/sla/compute.py
  src/medinfra/topology/checks.py
  src/medinfra/topology/model.py
)
PURE_CORE_MINIMUM=90
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run=(pytest)
if ((measure)); then
  python -m coverage erase
  run=(python -m coverage run -m pytest)
fi
pids=()
for ((k = 0; k < shards; k++)); do
  "${run[@]}" tests/unit -q -p no:cacheprovider --shard "$k/$shards" --basetemp "$work/tmp$k" "$@" >"$work/out$k" 2>&1 &
  pids+=("$!")
done
status=0
for k in "${!pids[@]}"; do
  wait "${pids[$k]}" || status=1
  echo "== shard $k/$shards"
  cat "$work/out$k"
done
if ((measure)); then
  python -m coverage combine --quiet
  echo "== coverage (lines run by the unit tests and their subprocesses)"
  echo "src/medinfra and plugins/: $(python -m coverage report --format=total)%"
  echo "the pure core (scripts/test-unit.sh's PURE_CORE), at least ${PURE_CORE_MINIMUM}%:"
  include=$(IFS=,; echo "${PURE_CORE[*]}")
  python -m coverage report --include="$include" --fail-under="$PURE_CORE_MINIMUM" || status=1
fi
exit "$status"
