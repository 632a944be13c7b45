#!/usr/bin/env bash
# Installs the Debian packages dcf_teach needs (as root), or says what to install (otherwise).
set -u
missing=()
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "warning: missing Debian packages: ${missing[*]} — install them with: sudo apt-get install ${missing[*]}" >&2
  echo "         (Fashion-MNIST commands and browser tests need them; the rest works without)" >&2
fi
exit 0
