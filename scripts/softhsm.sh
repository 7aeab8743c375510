#!/usr/bin/env bash
# SoftHSM2, a PKCS#11 token in software, for the key-encryption key's tests and for trying the PKCS#11 KEK.
#   scripts/softhsm.sh install                 -> installs Debian's softhsm2 when missing; prints the module
#   scripts/softhsm.sh token DIR LABEL PINFILE  -> a throwaway token under DIR (its own softhsm2.conf), the
#                                                 user PIN from PINFILE (owner-only, made when missing);
#                                                 prints the SOFTHSM2_CONF to export
# Installing needs root; without it the script says which package to install.
set -euo pipefail

MODULE_CANDIDATES=(
  /usr/lib/softhsm/libsofthsm2.so
  /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so
  /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so
)

find_module() {
  local m
  for m in "${MODULE_CANDIDATES[@]}"; do
    [ -f "$m" ] && { echo "$m"; return 0; }
  done
  return 1
}

install_softhsm() {
  if command -v softhsm2-util >/dev/null 2>&1 && find_module >/dev/null; then
    find_module
    return 0
  fi
  if [ "$(id -u)" -eq 0 ]; then
    echo "softhsm: installing Debian's softhsm2…" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2) >&2
    find_module
  else
    echo "softhsm: SoftHSM2 not found; install Debian's 'softhsm2' package" >&2
    return 1
  fi
}

case "${1:-}" in
  install)
    install_softhsm
    ;;
  token)
    [ $# -eq 4 ] || { echo "usage: $0 token DIR LABEL PINFILE" >&2; exit 2; }
    dir=$2 label=$3 pin_file=$4
    install_softhsm >/dev/null
    mkdir -p "$dir/tokens"
    chmod 700 "$dir" "$dir/tokens"
    conf="$dir/softhsm2.conf"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
      "$(cd "$dir/tokens" && pwd)" >"$conf"
    if [ ! -s "$pin_file" ]; then
      (umask 077 && od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$pin_file")
    fi
    pin=$(cat "$pin_file")
    so_pin=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    SOFTHSM2_CONF="$conf" softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" \
      >/dev/null
    echo "$conf"
    ;;
  *)
    echo "usage: $0 install|token DIR LABEL PINFILE" >&2; exit 2 ;;
esac
