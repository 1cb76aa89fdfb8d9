#!/usr/bin/env bash
# Render a stabfrag report in headless Chromium and save a screenshot of it.
#   apt-get install -y chromium        # once (Debian's package)
#   bash bench/screenshot_report.sh report.html report-screenshot.png
# The page is self-contained, so nothing is fetched: the flags keep Chromium offline.
set -euo pipefail
page=$(realpath "${1:-report.html}")
shot=$(realpath -m "${2:-report-screenshot.png}")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=${WINDOW:-1400,1800} \
  --screenshot="$shot" "file://$page" 2>/dev/null
test -s "$shot" && echo "screenshot: $shot"
