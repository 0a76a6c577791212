# shellcheck shell=bash
# Sourced by the hacking/ scripts (not run by itself).

# copy_shipped DEST: exactly what git would ship (tracked files plus untracked files that are not ignored; deleted
# ones skipped) copied to DEST, run from the repository root. Sanity, the Galaxy build and the docs site all read
# such a copy, never the work tree with its .venv and .tmp.
copy_shipped() {
  local dest=$1 file
  mkdir -p "$dest"
  (
    cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
    git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
      if [ -e "$file" ]; then cp --parents -- "$file" "$dest"; fi
    done
  )
}
