#!/usr/bin/env bash
# Debian's Chromium, the browser the console's tests drive (Playwright with executable_path: a test tool's
# own browser download does not work on a closed network, and would not be the distribution's build).
#   scripts/browser.sh install  -> installs Debian's chromium when missing; prints the executable's path
# Installing needs root; without it the script says which package to install.
set -euo pipefail

find_chromium() {
  local c
  for c in "${SHAREHUB_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  done
  return 1
}

install_chromium() {
  if find_chromium; then
    return 0
  fi
  if [ "$(id -u)" -eq 0 ]; then
    echo "browser: installing Debian's chromium…" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2
    find_chromium
  else
    echo "browser: Chromium not found; install Debian's 'chromium' package" >&2
    return 1
  fi
}

case "${1:-}" in
  install)
    install_chromium
    ;;
  *)
    echo "usage: $0 install" >&2
    exit 2
    ;;
esac
