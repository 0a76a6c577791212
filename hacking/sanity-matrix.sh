#!/usr/bin/env bash
# ansible-test sanity for every ansible-core minor version that meta/runtime.yml's requires_ansible claims and that
# installs on this machine: for each Python found here (3.11, 3.12, 3.13, or SANITY_PYTHONS), asks PyPI which
# ansible-core releases that Python can install; each minor version satisfying requires_ansible gets its own
# .tmp/sanity-<minor>-venv (with the oldest Python here that it supports as controller) and a run of
# hacking/sanity.sh with it. Logs in .tmp/sanity-<minor>.log; a summary at the end; fails if any version fails.
# Takes about 2-4 minutes per version (the first run per version longer: ansible-test fills its sanity venvs).
# Runs the versions one after another, under `nice -n 10`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
read -r -a pythons <<<"${SANITY_PYTHONS:-3.11 3.12 3.13}"
requires=$(sed -n 's/^requires_ansible: *//p' meta/runtime.yml | tr -d "\"'")
echo "== requires_ansible: $requires"

# The interpreter for X.Y: pythonX.Y on PATH if it runs, else one from pyenv's versions.
find_python() {
  local candidate
  for candidate in "$(command -v "python$1" || true)" "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/"$1".*/bin/"python$1"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] &&
       [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$1" ]; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

declare -A python_of=() path_of=()
for py in "${pythons[@]}"; do
  if ! path=$(find_python "$py"); then echo "Python $py: not on this machine"; continue; fi
  available=$("$path" -m pip index versions ansible-core 2>/dev/null | sed -n 's/^Available versions: //p')
  minors=$("$path" - "$requires" "$available" <<'EOF'
import sys
from pip._vendor.packaging.specifiers import SpecifierSet
from pip._vendor.packaging.version import Version

spec, available = SpecifierSet(sys.argv[1]), [Version(v) for v in sys.argv[2].split(", ") if v]
latest = {}
for v in available:
    minor = f"{v.major}.{v.minor}"
    if not v.is_prerelease and (minor not in latest or v > latest[minor]):
        latest[minor] = v
print(" ".join(m for m, v in sorted(latest.items(), key=lambda kv: kv[1]) if spec.contains(v)))
EOF
)
  echo "Python $py ($path): ansible-core ${minors:-none} ${minors:+satisfy requires_ansible}"
  for minor in $minors; do
    if [ -z "${python_of[$minor]:-}" ]; then python_of[$minor]=$py; path_of[$minor]=$path; fi
  done
done
mapfile -t versions < <(printf '%s\n' "${!python_of[@]}" | sort -V)
if [ "${#versions[@]}" -eq 0 ]; then echo "FAIL: no ansible-core version satisfying $requires installs here"; exit 1; fi

declare -A result=() took=()
for minor in "${versions[@]}"; do
  py=${python_of[$minor]} venv=$here/.tmp/sanity-$minor-venv log=$here/.tmp/sanity-$minor.log
  echo "== ansible-core $minor on Python $py: $venv, log $log"
  start=$(date +%s)
  if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "${path_of[$minor]} ansible-core==$minor.*" ]; then
    rm -rf "$venv"
    "${path_of[$minor]}" -m venv "$venv"
    if ! { "$venv/bin/python" -m pip install -q --upgrade pip &&
           "$venv/bin/python" -m pip install -q "ansible-core==$minor.*"; } >"$venv.log" 2>&1; then
      cat "$venv.log"; result[$minor]="failed (ansible-core $minor does not install)"; continue
    fi
    echo "${path_of[$minor]} ansible-core==$minor.*" >"$venv/.stamp"
  fi
  "$venv/bin/ansible" --version | sed -n 1p
  # ansible-test looks for pythonX.Y on PATH: give it this interpreter (pyenv's shims may not resolve it).
  mkdir -p "$venv/pybin" && ln -sfn "${path_of[$minor]}" "$venv/pybin/python$py"
  if PATH="$venv/pybin:$PATH" VENV=$venv PYTHON_VERSION=$py nice -n 10 hacking/sanity.sh >"$log" 2>&1; then
    result[$minor]=passed
  else
    result[$minor]="failed (exit $?)"
  fi
  took[$minor]=$(( $(date +%s) - start ))
  echo "ansible-core $minor: ${result[$minor]} in ${took[$minor]} s"
done

echo "== summary"
status=0
for minor in "${versions[@]}"; do
  echo "ansible-core $minor (Python ${python_of[$minor]}): ${result[$minor]}${took[$minor]:+, ${took[$minor]} s}"
  if [ "${result[$minor]}" != passed ]; then
    status=1
    # ansible-test's failures: its ERROR lines and the path:line:column findings under them.
    grep -E '^(ERROR|FATAL): |^[^ ]+:[0-9]+:[0-9]+: ' "$here/.tmp/sanity-$minor.log" | sed 's/^/  /' | head -60 || true
  fi
done
exit "$status"
