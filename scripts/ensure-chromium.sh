#!/usr/bin/env bash
# The browser tests (tests/browser/) drive Debian's Chromium through Playwright; Playwright's own browser
# download does not work on these machines. Install the Debian package when /usr/bin/chromium is missing.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "/usr/bin/chromium is missing: run 'sudo apt-get update && sudo apt-get install -y chromium'" >&2
  exit 1
fi
echo "installing chromium (Debian package) for the browser tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
test -x /usr/bin/chromium
