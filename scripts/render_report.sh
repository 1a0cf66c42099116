#!/usr/bin/env bash
# Render an HTML report in a real browser (headless Chromium) and save a screenshot, to check by eye
# that tables, figures and escaped labels display correctly.
#
#   scripts/render_report.sh REPORT.html [OUT.png] [WIDTH] [HEIGHT]
#   defaults:                             REPORT.png  1280    4000
#
# Needs Chromium: `apt-get install -y chromium` (Debian/Ubuntu) or set CHROMIUM=/path/to/chrome.
# The page is opened from a file:// URL; reports contain no scripts and load nothing from the network.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 REPORT.html [OUT.png] [WIDTH] [HEIGHT]" >&2; exit 2; }
report=$1
[ -f "$report" ] || { echo "$0: no such file: $report" >&2; exit 2; }
png=${2:-${report%.*}.png}
width=${3:-1280}
height=${4:-4000}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[ -n "$browser" ] || { echo "$0: Chromium not found (apt-get install -y chromium, or set CHROMIUM)" >&2; exit 2; }
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile" --window-size="$width,$height" --screenshot="$(realpath -m "$png")" "$url" \
    > "$profile/log" 2>&1 || { cat "$profile/log" >&2; exit 1; }
[ -s "$png" ] || { cat "$profile/log" >&2; echo "$0: no screenshot written" >&2; exit 1; }
echo "screenshot written to $png (${width}x${height})"
