#!/usr/bin/env bash
# Galaxy release check: builds the collection tarball into .tmp/release/ from a clean copy of exactly what git
# would ship, lists it, checks that no scratch/dev file got in, and runs galaxy-importer on it (offline, no
# container: ansible-doc and ansible-lint run, ansible-test does not). Fails on any importer ERROR or WARNING.
# Takes about 1 minute (plus about 30 s the first time, to create .tmp/release-venv).
#
# What ships (galaxy.yml build_ignore): what is needed to run the collection and to read about it (plugins/, roles/,
# playbooks/, meta/, requirements.txt, bindep.txt, README.md, COPYING, CHANGELOG.md, changelogs/, docs/). Left out:
# tests/ (with its scratch and output files: the tests need this repository's lab, Makefile and tooling anyway, so
# they are run from a clone), virtualenvs and .tmp/, and developer-only tooling: hacking/, .ci/, bench/, demo/ (needs
# the test lab), Makefile, pytest.ini, .ansible-lint, .gitignore and other dotfiles, and earlier tarballs.
set -euo pipefail
# shellcheck source=hacking/release-lib.sh
source "$(dirname "$0")/release-lib.sh"
cd "$here"
out=$here/.tmp/release
release_venv
rm -rf "$out" && mkdir -p "$out/worktree"

echo "== ansible-galaxy collection build ($(ansible-galaxy --version | sed -n 1p)) of a clean copy"
tarball=$(build_tarball "$out")

echo "== files in $(basename "$tarball")"
tar -tzf "$tarball" | sort | tee "$out/files.txt"
echo "($(grep -vc '/$' "$out/files.txt") files, $(du -k "$tarball" | cut -f1) KiB)"

fail=0
# Nothing that is scratch, test output, a venv, dev tooling or CI may be inside.
forbidden='(^|/)(\.tmp|\.venv|venv|\.tox|\.git|\.github|\.ci|hacking|bench|\.benchmarks|demo|\.hypothesis|\.pytest_cache|__pycache__|\.ruff_cache|\.mypy_cache|\.ansible|collections|tests)(/|$)'
forbidden+='|\.(pyc|pyo|log|tar\.gz|orig|rej|swp)$|(^|/)(Makefile|pytest\.ini|\.ansible-lint|\.gitignore|importer_result\.json)$'
forbidden+='|^tests/integration/(inventory|integration_config\.yml)$|^changelogs/\.plugin-cache\.yaml$'
if grep -E "$forbidden" "$out/files.txt"; then
  echo "FAIL: the files above must not be in the tarball (galaxy.yml build_ignore)"; fail=1
fi
# What must be inside for Galaxy, ansible-builder and ansible-test.
for f in MANIFEST.json FILES.json README.md CHANGELOG.md meta/runtime.yml meta/execution-environment.yml \
         requirements.txt bindep.txt COPYING plugins/modules/ roles/ docs/docsite/links.yml; do
  grep -qxF "$f" "$out/files.txt" || { echo "FAIL: $f is missing from the tarball"; fail=1; }
done

# build_ignore must also hold when someone builds straight from a working tree full of scratch files.
echo "== build_ignore check: building the working tree as it is"
ansible-galaxy collection build --force --output-path "$out/worktree" "$here" >/dev/null
if ! diff <(tar -tzf "$out/worktree/$(basename "$tarball")" | sort) "$out/files.txt" >"$out/worktree.diff"; then
  echo "FAIL: a build of the working tree ships files that git does not ('<'): extend galaxy.yml build_ignore"
  cat "$out/worktree.diff"; fail=1
fi

# galaxy-importer, configured to need no container and to write its scratch under .tmp/release.
mkdir -p "$out/importer-tmp" "$out/ansible-tmp"
cat >"$out/galaxy-importer.cfg" <<EOF
[galaxy-importer]
log_level_main = INFO
run_ansible_test = False
ansible_test_local_image = False
local_image_docker = False
infra_osd = False
run_ansible_doc = True
run_ansible_lint = True
offline_ansible_lint = True
run_flake8 = False
check_changelog = True
check_required_tags = True
require_v1_or_greater = False
ansible_local_tmp = $out/ansible-tmp
tmp_root_dir = $out/importer-tmp
EOF
export GALAXY_IMPORTER_CONFIG=$out/galaxy-importer.cfg
echo "== galaxy-importer $(python -c 'import importlib.metadata as m; print(m.version("galaxy-importer"))')"
rc=0
(cd "$out" && python -m galaxy_importer.main "$tarball") >"$out/importer.log" 2>&1 || rc=$?
cat "$out/importer.log"
if [ "$rc" -ne 0 ]; then echo "FAIL: galaxy-importer exited with $rc"; fail=1; fi
if grep -Eiw 'error|warning' "$out/importer.log" >/dev/null; then
  echo "FAIL: galaxy-importer reported $(grep -Eicw 'error|warning' "$out/importer.log") ERROR/WARNING line(s)"; fail=1
fi
grep -q '^Importer processing completed successfully$' "$out/importer.log" ||
  { echo "FAIL: galaxy-importer did not complete"; fail=1; }

if [ "$fail" -ne 0 ]; then exit 1; fi
echo "OK: $tarball builds, holds no scratch files and imports without errors or warnings"
