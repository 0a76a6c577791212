#!/usr/bin/env bash
# ansible-test sanity on a real (not symlinked) copy of the collection, offline.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON_VERSION:-3.11}
venv=${VENV:-$here/.venv}
dest=$here/.tmp/sanity/ansible_collections/regops/registry
# shellcheck source=hacking/common.sh
source "$here/hacking/common.sh"
rm -rf "$dest"
copy_shipped "$dest"
cd "$dest"
git init -q && git add -A >/dev/null && git -c user.email=ci@invalid -c user.name=ci commit -qm sanity
"$venv/bin/python" "$here/hacking/offline_get_pip.py" >/dev/null
"$venv/bin/ansible-test" sanity --python "$python" --color no --venv "$@"
