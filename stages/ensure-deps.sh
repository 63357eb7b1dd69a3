#!/usr/bin/env bash
# Installs the system packages bems needs when they are missing (Debian/Ubuntu, as root).
# Usage: stages/ensure-deps.sh [--with-postgres]
set -euo pipefail
need=()
pkg-config --exists libzstd 2>/dev/null || need+=(libzstd-dev)
pkg-config --exists libpq 2>/dev/null || need+=(libpq-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if [ "${1:-}" = "--with-postgres" ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "bems needs these packages: ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
  exit 69
fi
echo "installing: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
