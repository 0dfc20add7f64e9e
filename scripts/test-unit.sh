#!/usr/bin/env bash
# `make test-unit`: the unit tests in as many pytest processes as there are cores, each running a shard of them
# (tests/conftest.py's --shard). Processes, not pytest-xdist workers: the audit's transport patches the standard
# library for gevent when it is imported, which breaks xdist's channel to its workers.
set -uo pipefail
shards=${SHARDS:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pids=()
for ((k = 0; k < shards; k++)); do
  pytest tests/unit -q -p no:cacheprovider --shard "$k/$shards" --basetemp "$work/tmp$k" "$@" >"$work/out$k" 2>&1 &
  pids+=("$!")
done
status=0
for k in "${!pids[@]}"; do
  wait "${pids[$k]}" || status=1
  echo "== shard $k/$shards"
  cat "$work/out$k"
done
exit "$status"
