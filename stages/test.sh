#!/usr/bin/env bash
# make test: starts a throwaway PostgreSQL (unless BEMS_TEST_DATABASE_URL is already set), runs every test with
# code coverage, prints line coverage of BEMSCore and BEMSServer, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
pgdir=""
if [ -z "${BEMS_TEST_DATABASE_URL:-}" ] && [ -x stages/pg-embedded.sh ]; then
  pgdir=$(mktemp -d /tmp/bems-test-pg.XXXXXX)
  trap 'stages/pg-embedded.sh stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"' EXIT
  stages/pg-embedded.sh start "$pgdir" 54329 >&2
  export BEMS_TEST_DATABASE_URL=$(stages/pg-embedded.sh url "$pgdir")
fi
# Database tests must fail, not skip, when there is no database.
export BEMS_REQUIRE_DATABASE=${BEMS_REQUIRE_DATABASE:-1}

swift build --build-tests --enable-code-coverage
swift test --skip-build --enable-code-coverage 2>&1 | tee .build/test-output.txt | grep -vE '^(◇|↳)' || {
  echo "tests failed" >&2; exit 1; }
grep -qE 'Test run with [0-9]+ tests? .*passed|passed after' .build/test-output.txt

# Line coverage of the core library.
prof=$(find .build -name default.profdata -path '*codecov*' | head -1)
bin=$(find .build/debug/ -maxdepth 1 -name 'bemsPackageTests.xctest' | head -1)
if [ -n "$prof" ] && [ -n "$bin" ]; then
  echo "== line coverage: Sources/BEMSCore =="
  cov="$(dirname "$(readlink -f "$(command -v swift)")")/llvm-cov"  # the toolchain's own, matching its profile format
  [ -x "$cov" ] || cov=llvm-cov
  "$cov" report "$bin" -instr-profile="$prof" -ignore-filename-regex='(\.build|Tests|Sources/bems|Sources/BEMSCommandSupport)' \
    "$root/Sources/BEMSCore" | tail -n 40
  # The admin API's library (run in the test process by the API tests).
  echo "== line coverage: Sources/BEMSServer =="
  "$cov" report "$bin" -instr-profile="$prof" -ignore-filename-regex='(\.build|Tests)' \
    "$root/Sources/BEMSServer" | tail -n 12
fi
