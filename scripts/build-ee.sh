#!/usr/bin/env bash
# Builds medinfra's execution environment (execution-environment.yml) and prints its tag; `make ee` runs it.
# Cached: the image is tagged with a digest of its base image and of every file of this checkout that goes into
# it, so with nothing changed this only hashes files and asks podman whether the image exists.
# Needs the project's venv on PATH (medinfra, ansible-galaxy, ansible-builder, pip) and root (debootstrap, podman).
set -euo pipefail
cd "$(dirname "$0")/.."

repository=localhost/medinfra-ee
work=.cache/ee
# podman settings that work on this kind of machine (see docs/architecture.md); also for ansible-navigator.
export CONTAINERS_CONF="$PWD/src/medinfra/lab/containers.conf"

base=$(medinfra lab image --ee-base)

# What the collection and the wheel are built from: tracked and new files, not ignored ones (lab secrets, .cache),
# nor the tests and benchmarks that neither ships (galaxy.yml's build_ignore, pyproject.toml's packages).
sources() {
  git ls-files -z --cached --others --exclude-standard -- . ':!tests' ':!benchmarks' | while IFS= read -r -d '' file; do
    [[ -f $file ]] && printf '%s\0' "$file"
  done
}
digest=$({
  echo "$base"
  ansible-builder --version
  sources | sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-12)
tag="$repository:$digest"

if ! podman image exists "$tag"; then
  started=$SECONDS
  echo "building the execution environment $tag on $base" >&2
  rm -rf "$work/src" "$work/collections" "$work/context" && mkdir -p "$work/src" "$work/collections" "$work/wheels"
  sources | tar --null -T - -cf - | tar -xf - -C "$work/src"

  ansible-galaxy collection build --output-path "$work/collections" "$work/src" >&2
  mv "$work"/collections/medinfra-hospital-*.tar.gz "$work/collections/medinfra-hospital.tar.gz"
  rm -f "$work"/wheels/medinfra-*.whl
  pip wheel --quiet --no-deps --wheel-dir "$work/wheels" "$work/src" >&2

  # Every package any build stage installs, as wheels: PyPI is not reachable from inside `podman build`.
  # ansible-builder's own: the ansible and runner references, its container init, its builder stage's tools.
  mapfile -t builder_packages < <(python - <<'PY'
from ansible_builder.user_definition import UserDefinition

definition = UserDefinition("execution-environment.yml")
definition.validate()
print(*definition.ansible_ref_install_list.split(), definition.container_init["package_pip"], sep="\n")
print("bindep", "pyyaml", "packaging", sep="\n")
PY
  )
  pip wheel --quiet --wheel-dir "$work/wheels" --find-links "$work/wheels" \
    -r requirements.txt "${builder_packages[@]}" >&2

  ansible-builder build --file execution-environment.yml --context "$work/context" \
    --tag "$tag" --tag "$repository:latest" --build-arg "EE_BASE_IMAGE=$base" \
    --squash new --verbosity 2 >&2
  echo "execution environment $tag built in $((SECONDS - started)) s" >&2
  # Images of earlier builds (about 1 GB each); ones a container still uses stay.
  for old in $(podman images --format '{{.Repository}}:{{.Tag}}' "$repository"); do
    [[ $old == "$tag" || $old == "$repository:latest" ]] || podman rmi "$old" >/dev/null 2>&1 || true
  done
else
  podman tag "$tag" "$repository:latest"
fi
echo "$tag"
