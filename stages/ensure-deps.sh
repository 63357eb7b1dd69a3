#!/usr/bin/env bash
# Installs the system packages bems needs when they are missing (Debian/Ubuntu, as root).
# Usage: stages/ensure-deps.sh [--with-postgres] [--with-test-tools]
#   --with-postgres     the server programs (initdb, pg_ctl) for the embedded dev database and the tests
#   --with-test-tools   what the tests use besides: pgbouncer (pooler refusal), /usr/bin/time
set -euo pipefail
need=()
pkg-config --exists libzstd 2>/dev/null || need+=(libzstd-dev)
pkg-config --exists libpq 2>/dev/null || need+=(libpq-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
for flag in "$@"; do
  case "$flag" in
    --with-postgres) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql) ;;
    --with-test-tools)
      command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
      [ -x /usr/bin/time ] || need+=(time) ;;
    *) echo "ensure-deps: unknown flag $flag" >&2; exit 64 ;;
  esac
done
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "bems needs these packages: ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
  exit 69
fi
echo "installing: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
