#!/bin/sh
# Renders an output directory's report.html in headless Chromium and saves a
# screenshot, to check that the page renders offline (no network is used:
# the page has no external resources, and background networking is off).
#
#   scripts/check-report.sh OUT_DIR [SCREENSHOT.png]
#
# Needs `psim` on PATH (or PSIM=path/to/psim) and chromium
# (Debian: apt-get install chromium). Exits 3 with a message when chromium
# is missing, so CI can treat it as skipped.
set -eu
dir=${1:?usage: scripts/check-report.sh OUT_DIR [SCREENSHOT.png]}
shot=${2:-$dir/report.png}
psim=${PSIM:-psim}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "chromium not found: skipping the browser check (apt-get install chromium)" >&2
    exit 3
fi
"$psim" report "$dir" >/dev/null
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
abs=$(cd "$dir" && pwd)/report.html
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size=1200,2400 --hide-scrollbars \
    --screenshot="$shot" "file://$abs" >/dev/null 2>&1
test -s "$shot"
echo "$shot"
