#!/usr/bin/env bash
# ansible-test sanity on a real (not symlinked) copy of the collection, offline, writing nothing outside the clone
# (its home is .tmp/ansible-test-home, or ANSIBLE_TEST_HOME).
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
# ansible-test keeps its environments and caches (about 130 MB) in ~/.ansible/test: give it a home in the clone
# (kept between runs, so a warm run stays warm), with the caller's pip configuration (index, certificates) linked in.
caller_home=$HOME
export HOME=${ANSIBLE_TEST_HOME:-$here/.tmp/ansible-test-home}
mkdir -p "$HOME/.config"
for conf in .config/pip .pip .pydistutils.cfg; do
  if [ -e "$caller_home/$conf" ] && [ ! -e "$HOME/$conf" ]; then ln -s "$caller_home/$conf" "$HOME/$conf"; fi
done
"$venv/bin/python" "$here/hacking/offline_get_pip.py" >/dev/null
"$venv/bin/ansible-test" sanity --python "$python" --color no --venv "$@"
