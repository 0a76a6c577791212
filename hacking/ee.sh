#!/usr/bin/env bash
# Execution environment check: `ansible-builder create` of an EE that runs this collection, from
# meta/execution-environment.yml, requirements.txt and bindep.txt, into .tmp/ee-context/ (Containerfile and
# _build/); then checks that the context holds the requirement files and the collection. Building the image needs
# a container engine and is not done here (`podman build -f .tmp/ee-context/Containerfile .tmp/ee-context` does).
# Also runs `ansible-builder introspect` on the installed tarball: what an EE that installs the collection from
# Galaxy picks up from it. Takes about 20 s (plus about 30 s the first time, to create .tmp/release-venv).
#
# Why not `ansible-builder create -f meta/execution-environment.yml` as it is: in a collection, that file's
# dependencies.python/system are paths relative to the collection root (ansible-builder's introspection and
# galaxy-importer read them so), while `create` resolves them relative to the definition's own directory
# (meta/). So the definition is copied beside requirements.txt and bindep.txt, and its dependencies.galaxy
# (regops.registry from Galaxy) is pointed at the tarball built here from what git would ship.
set -euo pipefail
# shellcheck source=hacking/release-lib.sh
source "$(dirname "$0")/release-lib.sh"
cd "$here"
work=$here/.tmp/ee
context=$here/.tmp/ee-context
release_venv
rm -rf "$work" "$context" && mkdir -p "$work/def"

echo "== collection tarball"
tarball=$(build_tarball "$work")
name=$(basename "$tarball")

echo "== ansible-builder introspect of the installed collection (what an EE gets from its metadata)"
ANSIBLE_COLLECTIONS_PATH=$work/collections ansible-galaxy collection install --offline -p "$work/collections" "$tarball" >/dev/null
ansible-builder introspect --sanitize "$work/collections" | tee "$work/introspect.txt"

echo "== EE definition (meta/execution-environment.yml, galaxy pointed at $name)"
cp meta/execution-environment.yml requirements.txt bindep.txt "$work/def/"
cp "$tarball" "$work/def/"
python - "$work/def/execution-environment.yml" "$name" <<'EOF'
import sys
import yaml

path, tarball = sys.argv[1:]
with open(path) as f:
    ee = yaml.safe_load(f)
assert ee["version"] == 3, ee["version"]
assert ee["dependencies"]["galaxy"]["collections"] == [{"name": "regops.registry"}], ee["dependencies"]["galaxy"]
ee["dependencies"]["galaxy"] = {"collections": [{"name": f"collections/{tarball}", "type": "file"}]}
ee.setdefault("additional_build_files", []).append({"src": tarball, "dest": "collections"})
with open(path, "w") as f:
    yaml.safe_dump(ee, f, sort_keys=False)
EOF
cat "$work/def/execution-environment.yml"

echo "== ansible-builder create ($(ansible-builder --version))"
ansible-builder create -f "$work/def/execution-environment.yml" -c "$context" --output-filename Containerfile -v 2
(cd "$context" && find . -type f | sort)

fail=0
check() { if ! "$@"; then echo "FAIL: ${*: -2}"; fail=1; fi; }
# The context holds the requirement files, unchanged, and the collection; the Containerfile uses them.
check cmp -s requirements.txt "$context/_build/requirements.txt"
check cmp -s bindep.txt "$context/_build/bindep.txt"
check cmp -s "$tarball" "$context/_build/collections/$name"
check grep -qx "\- name: collections/$name" "$context/_build/requirements.yml"
base=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["images"]["base_image"]["name"])' \
  meta/execution-environment.yml)
core=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["dependencies"]["ansible_core"]["package_pip"])' \
  meta/execution-environment.yml)
for line in "ARG EE_BASE_IMAGE=\"$base\"" "ARG ANSIBLE_INSTALL_REFS=\"$core ansible-runner\"" \
            "COPY _build/requirements.txt requirements.txt" "COPY _build/bindep.txt bindep.txt" \
            "COPY _build /build" "--user-pip=requirements.txt --user-bindep=bindep.txt"; do
  check grep -qF -- "$line" "$context/Containerfile"
done
# The collection's own metadata gives an EE the same requirements.
for dep in 'requests>=2.25' python3 ca-certificates; do
  check grep -qF -- "- '$dep  # from collection regops.registry'" "$work/introspect.txt"
done
# ansible-core in the EE starts where requires_ansible starts.
requires=$(sed -n 's/^requires_ansible: *//p' meta/runtime.yml | tr -d "\"'")
check python -c 'import sys; from packaging.specifiers import SpecifierSet
low = [[s.version for s in SpecifierSet(a) if s.operator == ">="] for a in sys.argv[1:]]
sys.exit(0 if low[0] and low[0] == low[1] else 1)' "$requires" "${core#ansible-core}"

if [ "$fail" -ne 0 ]; then exit 1; fi
echo "OK: $context holds the Containerfile, requirements.txt, bindep.txt, requirements.yml and $name"
