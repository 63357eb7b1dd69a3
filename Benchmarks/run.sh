#!/usr/bin/env bash
# make bench: end-to-end figures of the file stages on generated data, with same-run baselines.
#   BENCH_DAYS   days of all 7 floors to generate (default 31, a month: about 42 MB of CSV, 7.7 M readings)
#   BENCH_DB=0   skip the database stages; BENCH_MICRO=0 skip the package-benchmark suite
#   BENCH_BIG=0  skip the memory check on one 500 MB+ file (Benchmarks/bigfile.sh; BIG_DB=0 keeps its file stages)
# Prints MB/s and readings/s per stage, peak RSS (from /usr/bin/time -v), bytes per reading of the chunks against
# Parquet (zstd 3, pyarrow) of the same readings, and validate's speed as a ratio of pyarrow.csv.read_csv.
# Then runs the package-benchmark micro benchmarks (Benchmarks/Package.swift).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
days=${BENCH_DAYS:-31}
out=${BENCH_OUT:-$root/.build/bench}
rm -rf "$out"; mkdir -p "$out"
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
python3 -c 'import pyarrow' 2>/dev/null || pip install -q pyarrow
swift build -c release >&2
bin=$root/.build/release
"$bin/bems" sample --out "$out/in" --days "$days" --start 2019-03-01 --seed 7 >&2

measure() {  # name, command...
  local name=$1; shift
  /usr/bin/time -v -o "$out/$name.time" "$@" > "$out/$name.out" 2> "$out/$name.err" || {
    cat "$out/$name.err" >&2; return 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out/$name.time" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/$name.time")
  echo "$name $wall $rss"
}
work="$out/work"
bytes=$(du -cb "$out"/in/*.csv | tail -1 | cut -f1)
v=$(measure validate "$bin/bems-validate" --work-dir "$work" "$out/in")
n=$(measure normalize "$bin/bems-normalize" --work-dir "$work" --sample 1 "$out/in")
readings=$(python3 -c "import json,glob; m=json.load(open(glob.glob('$work/normalize/runs/*/manifest.json')[0])); print(m['totals']['readings'], m['totals']['bytes'])")
read -r nread nbytes <<< "$readings"

mkdir -p "$out/long"
for c in "$work"/normalize/runs/*/chunks/*.bemc; do
  "$bin/bems" inspect --time-zone UTC "$c" > "$out/long/$(basename "$c" .bemc).csv" 2>/dev/null
done
python3 Benchmarks/compare_pyarrow.py "$out/in" "$out/long" "$out/pyarrow.json" > /dev/null

python3 - "$bytes" "$nread" "$nbytes" "$v" "$n" "$out/pyarrow.json" <<'PY'
import json, sys
bytes_, nread, nbytes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
stages = [sys.argv[4].split(), sys.argv[5].split()]
pa = json.load(open(sys.argv[6]))
print(f"input: {bytes_/1e6:.1f} MB of CSV, {nread} readings")
for name, wall, rss in stages:
    wall = float(wall)
    print(f"{name:10s} {wall:6.2f} s  {bytes_/wall/1e6:7.1f} MB/s  {nread/wall/1e6:6.2f} M readings/s  peak RSS {int(rss)/1024:6.1f} MB")
vwall = float(stages[0][1])
print(f"pyarrow.csv.read_csv (threads) {pa['pyarrow_read_csv_seconds']:.2f} s = {pa['pyarrow_read_csv_mb_s']:.1f} MB/s;"
      f" single thread {pa['pyarrow_read_csv_single_thread_mb_s']:.1f} MB/s")
print(f"validate / pyarrow speed ratio: {pa['pyarrow_read_csv_seconds']/vwall:.2f}x (threads), "
      f"{pa['pyarrow_read_csv_single_thread_seconds']/vwall:.2f}x (single thread)")
print(f"chunks  {nbytes} bytes = {nbytes/nread:.3f} bytes/reading")
print(f"parquet {pa['parquet_bytes']} bytes = {pa['parquet_bytes_per_reading']:.3f} bytes/reading (zstd 3, pyarrow)")
print(f"chunk / parquet size ratio: {nbytes/pa['parquet_bytes']:.3f}")
PY
# ---- Database stages against PostgreSQL's own bulk path, same readings, same machine, same run ----
if [ "${BENCH_DB:-1}" = "1" ]; then
  pg="$out/pg"
  stages/pg-embedded.sh start "$pg" 54339 >&2
  trap 'stages/pg-embedded.sh stop "$pg" >/dev/null 2>&1 || true' EXIT
  url=$(stages/pg-embedded.sh url "$pg")
  psql_() { psql "$url" -v ON_ERROR_STOP=1 -qAt "$@"; }
  psql_ -c "CREATE DATABASE bench_bems" -c "CREATE DATABASE bench_copy"
  bems_url="${url/\/postgres\?//bench_bems?}"
  copy_url="${url/\/postgres\?//bench_copy?}"
  export BEMS_DEV_DATABASE_URL="$bems_url"
  d=$(measure dedupe "$bin/bems-dedupe" --work-dir "$work")
  l=$(measure load "$bin/bems-load" --work-dir "$work")
  r=$(measure refresh "$bin/bems-refresh" --work-dir "$work")

  # Baseline: the same schema (bems setup), then server-side COPY of one long CSV, then the same refresh.
  cat "$out"/long/*.csv | awk 'NR==1 || !/^timestamp,/' > "$out/long/all.csv.tmp"
  mv "$out/long/all.csv.tmp" "$pg/all.csv" && chown postgres "$pg/all.csv" 2>/dev/null || true
  BEMS_DEV_DATABASE_URL="$copy_url" "$bin/bems" setup --work-dir "$out/work-copy" >/dev/null 2>&1
  start=$(date +%s.%N)
  psql "$copy_url" -v ON_ERROR_STOP=1 -qAt \
    -c "COPY sensor_readings (timestamp, sensor_id, floor_number, equipment_type, reading_value, unit, status) FROM '$pg/all.csv' WITH (FORMAT csv, HEADER true)"
  mid=$(date +%s.%N)
  psql "$copy_url" -v ON_ERROR_STOP=1 -qAt -c "SELECT bems.refresh_daily_aggregates(true)" -c "ANALYZE sensor_readings" -c "ANALYZE daily_aggregates"
  end=$(date +%s.%N)
  python3 - "$nread" "$d" "$l" "$r" "$start" "$mid" "$end" "$v" "$n" <<'PY'
import sys
nread = int(sys.argv[1])
stage = {x.split()[0]: float(x.split()[1]) for x in sys.argv[2:5] + sys.argv[8:10]}
rss = {x.split()[0]: int(x.split()[2]) for x in sys.argv[2:5] + sys.argv[8:10]}
copy_s = float(sys.argv[6]) - float(sys.argv[5])
refresh_s = float(sys.argv[7]) - float(sys.argv[6])
base = copy_s + refresh_s
total = sum(stage.values())
for k in ["dedupe", "load", "refresh"]:
    print(f"{k:10s} {stage[k]:6.2f} s  {nread/stage[k]/1e6:6.2f} M readings/s  peak RSS {rss[k]/1024:6.1f} MB")
print(f"baseline: server-side COPY {copy_s:.2f} s + refresh/analyze {refresh_s:.2f} s = {base:.2f} s")
print(f"pipeline validate..refresh {total:.2f} s = {total/base:.2f}x the COPY path (target <= 1.2x)")
print(f"load stage alone {stage['load']:.2f} s = {stage['load']/copy_s:.2f}x the COPY step (target < 1.0x)")
PY
  psql "$bems_url" -qAt -c "SELECT pg_size_pretty(pg_total_relation_size('sensor_readings'))" 2>/dev/null | sed 's/^/sensor_readings size: /' || true
  python3 -c "import json,glob; m=json.load(open(sorted(glob.glob('$work/load/runs/*/manifest.json'))[-1])); print('slowest load chunk:', m['totals']['maxChunkMilliseconds'], 'ms (target 10 s)')"
  echo "queries on the loaded database ($nread readings):"
  bash Benchmarks/queries.sh "$bems_url" 40
fi

if [ "${BENCH_BIG:-1}" = "1" ]; then
  echo "== memory under load: one 500 MB+ file through every stage =="
  bash Benchmarks/bigfile.sh
fi

if [ "${BENCH_MICRO:-1}" = "1" ]; then
  (cd Benchmarks && swift package benchmark --no-progress 2>&1 | tail -n 60)
fi
