#!/usr/bin/env bash
# Make sure Debian's chromium is installed: the report test opens report.html in it, headless.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
echo "installing Debian's chromium for the headless report test"
as_root=()
[ "$(id -u)" -ne 0 ] && as_root=(sudo -n)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get install -y -q chromium >/dev/null \
    || { "${as_root[@]}" apt-get update -q >/dev/null && "${as_root[@]}" apt-get install -y -q chromium >/dev/null; } \
    || { echo "error: could not install chromium; install it (apt-get install chromium) and run make test again" >&2; exit 1; }
