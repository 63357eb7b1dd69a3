#!/usr/bin/env bash
# make bench: end-to-end figures of the file stages on generated data, with same-run baselines.
#   BENCH_DAYS   days of all 7 floors to generate (default 62, about 90 MB of CSV)
# Prints MB/s and readings/s per stage, peak RSS (from /usr/bin/time -v), bytes per reading of the chunks against
# Parquet (zstd 3, pyarrow) of the same readings, and validate's speed as a ratio of pyarrow.csv.read_csv.
# Then runs the package-benchmark micro benchmarks (Benchmarks/Package.swift).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
days=${BENCH_DAYS:-62}
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
n=$(measure normalize "$bin/bems-normalize" --work-dir "$work" "$out/in")
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
if [ "${BENCH_MICRO:-1}" = "1" ]; then
  (cd Benchmarks && swift package benchmark --no-progress 2>&1 | tail -n 60)
fi
