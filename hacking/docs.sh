#!/usr/bin/env bash
# The collection's HTML docsite, built with antsibull-docs and Sphinx into .tmp/docs/build/html
# (`make docs`): a page for every module, plugin and role, made from their own documentation, and the
# Markdown guides docs/*.md listed in docs/docsite/extra-docs.yml.
#
# Each run starts afresh: a copy of the collection as git would ship it (tracked files plus untracked,
# not ignored ones) in .tmp/docs-src, the guides turned into RST extra docs (docs/docsite/rst/) inside
# that copy with pandoc (hacking/docs_guide_links.lua rewrites links between guides), then
# `antsibull-docs lint-collection-docs --plugin-docs`, `antsibull-docs sphinx-init` and its build.sh
# (with offline fallbacks for the intersphinx inventories, hacking/docs_inventories.py).
# antsibull-docs, Sphinx and ansible-core live in their own venv, .tmp/docs-venv (made if missing;
# delete it to upgrade them). Installs pandoc with apt-get if missing.
# Fails on any lint finding, on any Sphinx warning, and on a guide missing from extra-docs.yml.
# Time (2 cores): about 60s cold (venv made; pip cache warm), about 25s warm (venv present).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# shellcheck source=hacking/common.sh
source "$here/hacking/common.sh"
collection=regops.registry
venv=$here/.tmp/docs-venv
out=$here/.tmp/docs
top=$here/.tmp/docs-src
src=$top/ansible_collections/${collection/.//}
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)

if ! command -v pandoc >/dev/null; then
  echo "docs: installing pandoc"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends pandoc >/dev/null
fi

if [ ! -x "$venv/bin/antsibull-docs" ] || [ ! -x "$venv/bin/ansible-doc" ]; then
  echo "docs: making $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # ansible-core as the tests have it (tests/requirements.txt), antsibull-docs as PyPI has it.
  "$venv/bin/pip" install -q "$(grep -m1 '^ansible-core' tests/requirements.txt)" antsibull-docs
fi
export PATH=$venv/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$top
export ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=0

# The copy of the collection that antsibull-docs reads.
rm -rf "$out" "$top"
mkdir -p "$out"
copy_shipped "$src"

# The guides, as RST extra docs. A ref of extra-docs.yml whose guide is absent is left out of this
# build (reliability.md exists only once `make reliability` has run); an unlisted guide is an error.
rst=$src/docs/docsite/rst
if [ -e "$rst" ]; then
  echo "docs: docs/docsite/rst/ is made from docs/*.md at build time; do not keep RST files there" >&2
  exit 1
fi
mkdir -p "$rst"
python - "$src/docs/docsite/extra-docs.yml" docs <<'EOF'
import os, sys, yaml
index, guides = sys.argv[1], sys.argv[2]
with open(index, encoding="utf-8") as f:
    data = yaml.safe_load(f)
ref = lambda entry: entry["ref"] if isinstance(entry, dict) else entry
listed = {ref(e) for s in data["sections"] for e in s["toctree"]}
unlisted = sorted(n[:-3] for n in os.listdir(guides) if n.endswith(".md") and n[:-3] not in listed)
if unlisted:
    sys.exit(f"docs: add {', '.join(unlisted)} to docs/docsite/extra-docs.yml (every docs/*.md guide is on the site)")
absent = sorted(r for r in listed if not os.path.isfile(os.path.join(guides, r + ".md")))
if absent:
    print(f"docs: left out (no docs/<ref>.md): {', '.join(absent)}")
    for s in data["sections"]:
        s["toctree"] = [e for e in s["toctree"] if ref(e) not in absent]
    data["sections"] = [s for s in data["sections"] if s["toctree"]]
    with open(index, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)
EOF
for md in docs/*.md; do
  name=$(basename "$md" .md)
  {
    printf '.. _ansible_collections.%s.docsite.%s:\n\n' "$collection" "${name//-/_}"
    pandoc --from gfm-gfm_auto_identifiers --to rst --wrap=preserve --columns=1000 \
      --lua-filter hacking/docs_guide_links.lua "$md"
  } >"$rst/$name.rst"
done

echo "docs: antsibull-docs lint-collection-docs --plugin-docs"
# The linter copies the collection with `git ls-files` when the path is inside a Git work tree, and
# the copy lies in this repository's ignored .tmp/: it would lint an empty collection. The ceiling
# stops Git from finding this repository, so the linter copies every file.
GIT_CEILING_DIRECTORIES=$top antsibull-docs lint-collection-docs --plugin-docs "$src"

echo "docs: antsibull-docs sphinx-init"
antsibull-docs sphinx-init --use-current --fail-on-error --dest-dir "$out" \
  --project "$collection" --title "$collection" --copyright "$collection developers" "$collection"
pip install -q -r "$out/requirements.txt"
# No network to fetch the intersphinx inventories: local fallbacks (see the script).
python hacking/docs_inventories.py "$out"

echo "docs: build.sh"
(cd "$out" && nice -n 10 ./build.sh)

index=$out/build/html/index.html
[ -f "$index" ] || { echo "docs: $index was not written" >&2; exit 1; }
echo "docs: $index"
