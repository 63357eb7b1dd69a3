#!/usr/bin/env bash
# Memory under load (issue 4): one input file of BIG_MB+ megabytes (default 500) through every stage, each under
# /usr/bin/time -v; prints peak RSS per stage and fails when one reaches the 512 MB limit (target: under 128 MB).
# The file is one floor (floor 2, the widest) over several generated years, concatenated under one header: the
# stages see a single 2019Floor2.csv of the requested size.
#   BIG_MB        minimum size of the file in MB (default 500)
#   BIG_DB=0      file stages only (validate, normalize); the database stages load about 90 M readings (~10 GB)
#   BIG_OUT       scratch folder (default .build/bench-big)
# Called by Benchmarks/run.sh (make bench) unless BENCH_BIG=0; runs on its own too (needs a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=$root/.build/release
big_mb=${BIG_MB:-500}
out=${BIG_OUT:-$root/.build/bench-big}
limit_kb=$((512 * 1024))
target_kb=$((128 * 1024))
[ -x "$bin/bems" ] || swift build -c release >&2
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
rm -rf "$out"; mkdir -p "$out/gen" "$out/in"

# Floor 2 writes about 87 MB per generated year; generate whole years until the file is big enough.
years=$(( (big_mb + 86) / 87 ))
"$bin/bems" sample --out "$out/gen" --floors 2 --start 2019-01-01 --days $((years * 365 + years / 4 + 1)) --seed 11 >&2
first=1
for f in $(ls "$out"/gen/*Floor2.csv | sort); do
  if [ $first = 1 ]; then cat "$f"; first=0; else tail -n +2 "$f"; fi
done > "$out/in/2019Floor2.csv"
rm -rf "$out/gen"
size=$(stat -c %s "$out/in/2019Floor2.csv")
echo "big file: $out/in/2019Floor2.csv, $((size / 1000000)) MB, $(($(wc -l < "$out/in/2019Floor2.csv") - 1)) rows"
[ "$size" -ge $((big_mb * 1000000)) ] || { echo "the generated file is smaller than ${big_mb} MB" >&2; exit 1; }

work="$out/work"
status=0
run() {  # stage, command...
  local name=$1; shift
  /usr/bin/time -v -o "$out/$name.time" "$@" > "$out/$name.out" 2> "$out/$name.err" || {
    echo "$name failed:" >&2; tail -n 20 "$out/$name.err" >&2; exit 1; }
  local rss wall
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/$name.time")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out/$name.time")
  local verdict="under the 128 MB target"
  if [ "$rss" -ge "$limit_kb" ]; then verdict="OVER the 512 MB limit"; status=1
  elif [ "$rss" -ge "$target_kb" ]; then verdict="under the 512 MB limit, over the 128 MB target"; fi
  printf '%-10s peak RSS %7.1f MB  wall %s  (%s)\n' "$name" "$(awk "BEGIN{print $rss/1024}")" "$wall" "$verdict"
}
run validate "$bin/bems-validate" --work-dir "$work" "$out/in"
run normalize "$bin/bems-normalize" --work-dir "$work" --sample 1 "$out/in"
if [ "${BIG_DB:-1}" = "1" ]; then
  pg="$out/pg"
  stages/pg-embedded.sh start "$pg" 54338 >&2
  trap 'stages/pg-embedded.sh stop "$pg" >/dev/null 2>&1 || true' EXIT
  export BEMS_DEV_DATABASE_URL=$(stages/pg-embedded.sh url "$pg")
  run dedupe "$bin/bems-dedupe" --work-dir "$work"
  run load "$bin/bems-load" --work-dir "$work"
  run refresh "$bin/bems-refresh" --work-dir "$work"
fi
exit $status
