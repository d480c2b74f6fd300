#!/usr/bin/env bash
# Page tests drive Debian's headless Chromium (no browser download). Install it if missing.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the page tests..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
else
  echo "The page tests need Chromium at $CHROMIUM: run 'sudo apt-get install chromium' (or set CHROMIUM=...)." >&2
  exit 1
fi
