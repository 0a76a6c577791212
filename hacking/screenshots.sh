#!/usr/bin/env bash
# PNG screenshots of the docsite that hacking/docs.sh built, taken with headless Chromium (installed
# with apt-get if missing): the regops.registry.registry_tags module page and the promotion guide, at
# 1280x2000, into .tmp/docs/screenshots/. Fails if the site is not built or a PNG is under 50 KB.
# Time: about 5s (plus about 30s the first time, to install chromium).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
html=$here/.tmp/docs/build/html/collections/regops/registry
dest=$here/.tmp/docs/screenshots
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "screenshots: installing chromium"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  chromium=$(command -v chromium)
fi

mkdir -p "$dest"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
shot() {  # shot PAGE.html NAME.png
  local page=$html/$1 png=$dest/$2
  [ -f "$page" ] || { echo "screenshots: $page is missing; run hacking/docs.sh (make docs) first" >&2; exit 1; }
  rm -f "$png"
  # --no-sandbox: Chromium refuses to run as root otherwise.
  "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
    --window-size=1280,2000 --screenshot="$png" "file://$page" >/dev/null 2>&1
  local size
  size=$(stat -c %s "$png" 2>/dev/null || echo 0)
  if [ "$size" -lt 50000 ]; then
    echo "screenshots: $png is $size bytes, expected a rendered page (> 50 KB)" >&2
    exit 1
  fi
  echo "screenshots: $png ($((size / 1024)) KiB)"
}
shot registry_tags_module.html registry_tags_module.png
shot docsite/promoting-images.html promoting-images.png
