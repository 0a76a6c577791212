# shellcheck shell=bash
# Sourced by hacking/galaxy.sh and hacking/ee.sh (not run by itself): the release venv and the clean tarball build.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hacking/common.sh
source "$here/hacking/common.sh"
release_venv=$here/.tmp/release-venv
release_packages=(galaxy-importer ansible-builder 'ansible-core>=2.19,<2.20')

# .tmp/release-venv with galaxy-importer, ansible-builder and ansible-core 2.19: created if missing, reinstalled
# when the package list changes; put first on PATH (galaxy-importer runs ansible-doc and ansible-lint from PATH).
release_venv() {
  local stamp=$release_venv/.stamp
  if [ ! -x "$release_venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${release_packages[*]}" ]; then
    echo "== creating $release_venv (about 30 s)"
    python3 -m venv "$release_venv"
    if ! { "$release_venv/bin/python" -m pip install -q --upgrade pip &&
           "$release_venv/bin/python" -m pip install -q "${release_packages[@]}"; } >"$release_venv.log" 2>&1; then
      cat "$release_venv.log" >&2; return 1
    fi
    echo "${release_packages[*]}" >"$stamp"
  fi
  export PATH=$release_venv/bin:$PATH ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
}

# build_tarball OUTDIR: copies what git would ship to OUTDIR/src and builds the collection tarball from it into
# OUTDIR.
# Prints the tarball's path.
build_tarball() {
  local out=$1 version
  rm -rf "$out/src"
  copy_shipped "$out/src"
  version=$(sed -n 's/^version: *//p' "$here/galaxy.yml")
  ansible-galaxy collection build --force --output-path "$out" "$out/src" >&2
  echo "$out/regops-registry-$version.tar.gz"
}
