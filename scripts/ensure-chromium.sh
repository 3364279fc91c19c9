#!/usr/bin/env bash
# Find or install Debian's Chromium and ChromeDriver for the report's browser test.
# Never fails: where they cannot be installed, the browser test skips and says why.
set -u
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver (Debian) for the report's browser test ..."
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq >/dev/null 2>&1 || true
  timeout 900 apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
    || echo "warning: could not install chromium; the browser test will be skipped"
else
  echo "note: chromium not found and not installable here (not root or no apt-get); the browser test will be skipped"
fi
exit 0
