#!/usr/bin/env bash
# Prints the dev database URL for make: $BEMS_DEV_DATABASE_URL when set, otherwise the embedded local PostgreSQL
# kept in WORK/pg (started on first use, Unix socket only). staging and prod never fall back to it.
# usage: stages/local-db.sh WORK [PORT]
set -euo pipefail
work=${1:?usage: local-db.sh WORK [PORT]}
port=${2:-54331}
if [ -n "${BEMS_DEV_DATABASE_URL:-}" ]; then
  echo "$BEMS_DEV_DATABASE_URL"
  exit 0
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
dir=$(cd "$work" && pwd)/pg
"$here/pg-embedded.sh" start "$dir" "$port" >&2
"$here/pg-embedded.sh" url "$dir"
