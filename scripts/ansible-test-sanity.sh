#!/usr/bin/env bash
# ansible-test sanity on the built collection, as Galaxy or a user installs it: usage ARTIFACT.tar.gz [PYTHON].
# Every test that runs offline (no --docker/--remote); the first run builds ansible-test's venvs in
# ~/.ansible/test/venv (pylint, yamllint, ... from the package index), later runs reuse them.
set -euo pipefail

artifact=$(realpath "$1")
python_version=${2:-3.11}
here=$(cd "$(dirname "$0")" && pwd)
bin=$(dirname "$(command -v ansible-test)")

# ansible-test bootstraps pip in each venv with get-pip.py from ci-files.testing.ansible.com (unreachable here) unless
# ~/.ansible/test/cache holds one for the pip version it pins: put our stand-in there, under the name it looks for.
pip_version=$("$bin/python" -c 'import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="'"$python_version"'"))["pip"])')
get_pip=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [[ ! -f $get_pip ]]; then
  mkdir -p "$(dirname "$get_pip")"
  cp "$here/ansible-test-get-pip.py" "$get_pip"
fi

# Outside the checkout: inside a git work tree, ansible-test tests only the files git tracks (none, under .cache).
root=$(mktemp -d "${TMPDIR:-/tmp}/medinfra-sanity.XXXXXX")
trap 'rm -rf "$root"' EXIT
# The checkout's ansible.cfg (ANSIBLE_CONFIG, or found in the working directory) points at the checkout's own
# collection; ansible-test must see the installed one.
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH
cd "$root"
if ! installed=$(ansible-galaxy collection install --offline --no-deps --force -p "$root" "$artifact" 2>&1); then
  echo "$installed" >&2
  exit 1
fi

# The dependencies (containers.podman for the connection plugin, ...) beside it, where ansible-test's import test
# looks: linked from the `ansible` package, which ships them (Galaxy may be unreachable).
"$bin/python" - "$root/ansible_collections" <<'PYTHON'
import json
import os
import sys

import ansible_collections

root = sys.argv[1]
with open(os.path.join(root, "medinfra", "hospital", "MANIFEST.json"), encoding="utf-8") as manifest:
    dependencies = json.load(manifest)["collection_info"]["dependencies"]
for dependency in dependencies:
    namespace, name = dependency.split(".")
    found = [os.path.join(path, namespace, name) for path in ansible_collections.__path__]
    found = [path for path in found if os.path.isdir(path)]
    if not found:
        sys.exit(f"collection {dependency}, a dependency in galaxy.yml, is not installed (the ansible package has it)")
    os.makedirs(os.path.join(root, namespace), exist_ok=True)
    os.symlink(found[0], os.path.join(root, namespace, name))
PYTHON

cd ansible_collections/medinfra/hospital
ansible-test sanity --python "$python_version" --color no
