#!/usr/bin/env bash
# make bench-full: the whole dataset's shape and size through all five stages, against PostgreSQL's own bulk path
# (server-side COPY of the same readings as CSV), in the same run, on the same server. Outside CI; under an hour.
#
#   BENCH_FULL_START / BENCH_FULL_END  first and last Bangkok day (default 2018-07-01 .. 2019-12-31: `bems sample
#                       --full`, the 14 real files with 2019Floor6 cut at 2019-10-22 13:27 plus the junk line "2").
#                       Any other range is generated with --start/--days (and the junk line when it covers 2019).
#   BENCH_FULL_OUT      scratch folder (default .build/bench-full); the run is resumable: a finished step leaves
#                       its figures in OUT/figures and is skipped by the next run (delete a figure file to redo it;
#                       the database steps redo as one group). BENCH_FULL_FRESH=1 starts from scratch.
#   BENCH_FULL_PORT     port of the benchmark's own PostgreSQL (default 54373), in OUT/pg
#   BENCH_FULL_REPS     query repetitions (default 40)
#
# Every stage runs under /usr/bin/time -v: wall, client CPU (user+sys), peak RSS; the server's CPU is read from the
# postmaster's /proc counters (its own, its reaped backends', its live children's). The baseline, on a second
# database of the same server with the same schema (bems setup): the secondary indexes (unique key, floor BRIN)
# dropped, COPY ... FROM 'all.csv' (CSV, the readings as `bems inspect` prints them), the indexes built, the table
# recomputed (bems.refresh_daily_aggregates(true)), ANALYZE. Then: one more day of all 7 floors through the pipeline
# on top (incremental day; its refresh against REFRESH MATERIALIZED VIEW CONCURRENTLY of the old view at the same
# size, checked equal, then bems-refresh --force), the application's queries (Benchmarks/queries.sh), database size
# and chunk bytes against Parquet (zstd 3, pyarrow).
# Disk: see README (Benchmarks); the baseline's CSV and database are removed after they are measured.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=${BENCH_FULL_START:-2018-07-01}
end=${BENCH_FULL_END:-2019-12-31}
out=${BENCH_FULL_OUT:-$root/.build/bench-full}
port=${BENCH_FULL_PORT:-54373}
reps=${BENCH_FULL_REPS:-40}
bin=$root/.build/release
[ "${BENCH_FULL_FRESH:-0}" = "1" ] && { stages/pg-embedded.sh stop "$out/pg" >/dev/null 2>&1 || true; rm -rf "$out"; }
mkdir -p "$out/figures"
fig=$out/figures
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
python3 -c 'import pyarrow' 2>/dev/null || pip install -q pyarrow
[ "${BENCH_FULL_BUILD:-1}" = "1" ] && swift build -c release >&2
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
days=$(( ( $(date -ud "$end" +%s) - $(date -ud "$start" +%s) ) / 86400 + 1 ))
[ "$days" -ge 1 ] || { echo "BENCH_FULL_END must not be before BENCH_FULL_START" >&2; exit 64; }

# ---- 1. Generate (skipped when the same range is already there) ----
stamp="$start $end"
if [ "$(cat "$out/in/.generated" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$out/in" "$out/inc"; rm -f "$fig"/*
  if [ "$start" = 2018-07-01 ] && [ "$end" = 2019-12-31 ]; then
    "$bin/bems" sample --full --out "$out/in" --seed 42 > "$out/generate.out"
  else
    trunc=(); [ "${start:0:4}" -le 2019 ] && [ "${end:0:4}" -ge 2019 ] && trunc=(--truncate-floor6)
    "$bin/bems" sample --out "$out/in" --start "$start" --days "$days" --seed 42 "${trunc[@]}" > "$out/generate.out"
  fi
  # The incremental day: the day after the period, all 7 floors, in a folder of its own.
  next=$(date -ud "$end + 1 day" +%F)
  "$bin/bems" sample --out "$out/inc" --start "$next" --days 1 --seed 43 > /dev/null
  echo "$stamp" > "$out/in/.generated"
  log "generated: $(tail -1 "$out/generate.out")"
fi
csv_bytes=$(du -cb "$out"/in/*.csv | tail -1 | cut -f1)

# ---- helpers ----
pg="$out/pg"
postmaster_cpu() {  # server CPU seconds so far: postmaster self + reaped children + live children
  local pid; pid=$(head -1 "$pg/data/postmaster.pid")
  python3 - "$pid" <<'PY'
import os, sys
pid = sys.argv[1]; hz = os.sysconf("SC_CLK_TCK")
def fields(p):
    with open(f"/proc/{p}/stat") as f: return f.read().rsplit(")", 1)[1].split()
f = fields(pid); total = sum(int(x) for x in f[11:15])
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            g = fields(p)
            if g[1] == pid: total += int(g[11]) + int(g[12])
        except (FileNotFoundError, ProcessLookupError, IndexError): pass
print(total / hz)
PY
}
measure() {  # name, command...: writes figures/<name> (wall user sys rss_kb server_cpu)
  local name=$1; shift
  local s0=0 s1=0
  [ -f "$pg/data/postmaster.pid" ] && s0=$(postmaster_cpu)
  /usr/bin/time -v -o "$out/$name.time" "$@" > "$out/$name.out" 2> "$out/$name.err" || {
    echo "$name failed:" >&2; tail -n 20 "$out/$name.err" >&2; return 1; }
  [ -f "$pg/data/postmaster.pid" ] && s1=$(postmaster_cpu)
  awk -F': ' -v name="$name" -v srv="$(python3 -c "print(round($s1 - $s0, 2))")" '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); wall = (n == 3) ? p[1]*3600 + p[2]*60 + p[3] : p[1]*60 + p[2] }
    /User time/ { user = $2 } /System time/ { sys = $2 } /Maximum resident set size/ { rss = $2 }
    END { print wall, user, sys, rss, srv }' "$out/$name.time" > "$fig/$name"
  log "$name: $(cat "$fig/$name") (wall user sys rss_kb server_cpu)"
}
psql_() { psql "$1" -v ON_ERROR_STOP=1 -qAt "${@:2}"; }
clock() { date +%s.%N; }
disk_mark() {  # records the bytes the run uses now (the largest mark is the disk space it needs)
  du -sb "$out" 2>/dev/null | cut -f1 > "$fig/disk-$1"
}

# ---- 2. File stages ----
work="$out/work"
if [ ! -f "$fig/validate" ] || [ ! -f "$fig/normalize" ]; then
  rm -rf "$work" "$fig/export" "$fig/parquet"
  measure validate "$bin/bems-validate" --work-dir "$work" "$out/in" || [ -f "$fig/validate" ]
  measure normalize "$bin/bems-normalize" --work-dir "$work" --sample 1 "$out/in"
fi
read -r nread chunk_bytes < <(python3 -c "import json; m=json.load(open('$work/normalize/runs/'+open('$work/normalize/CURRENT').read().strip()+'/manifest.json')); print(m['totals']['readings'], m['totals']['bytes'])")

# ---- 3. The same readings as one long CSV (the baseline's input), and as Parquet (zstd 3) ----
mkdir -p "$pg"
if [ ! -f "$fig/parquet" ]; then
  log "exporting the readings as CSV (bems inspect, UTC)"
  ncur=$(cat "$work/normalize/CURRENT")
  rm -rf "$out/long"; mkdir -p "$out/long"
  # One process per chunk, two at a time (one per core), then concatenated in chunk order.
  ls "$work/normalize/runs/$ncur/chunks"/*.bemc | xargs -P 2 -I{} sh -c \
    '"$0" inspect --time-zone UTC "$1" 2>/dev/null | tail -n +2 > "$2/$(basename "$1" .bemc).csv"' "$bin/bems" {} "$out/long"
  { echo "timestamp,sensor_id,floor_number,equipment_type,reading_value,unit,status"
    for f in $(ls "$out/long"/*.csv | sort); do cat "$f"; rm -f "$f"; done; } > "$out/all.csv.tmp"
  rmdir "$out/long"
  mv "$out/all.csv.tmp" "$out/all.csv"
  python3 Benchmarks/parquet_long.py "$out/all.csv" "$out/readings.parquet" > "$fig/parquet"
  disk_mark export
  rm -f "$out/readings.parquet"
  log "parquet: $(cat "$fig/parquet")"
fi

# ---- 4. The server: its own, with the same settings for both paths ----
if [ ! -f "$pg/data/PG_VERSION" ]; then
  stages/pg-embedded.sh start "$pg" "$port" >&2
  url=$(stages/pg-embedded.sh url "$pg")
  psql_ "$url" -c "ALTER SYSTEM SET shared_buffers = '512MB'" -c "ALTER SYSTEM SET max_wal_size = '8GB'" \
    -c "ALTER SYSTEM SET maintenance_work_mem = '256MB'" -c "ALTER SYSTEM SET work_mem = '32MB'"
  stages/pg-embedded.sh stop "$pg" >&2
fi
stages/pg-embedded.sh start "$pg" "$port" >&2
trap 'stages/pg-embedded.sh stop "$pg" >/dev/null 2>&1 || true' EXIT
url=$(stages/pg-embedded.sh url "$pg")
bems_url="${url/\/postgres\?//bench_bems?}"
copy_url="${url/\/postgres\?//bench_copy?}"
pgsizes() {  # url -> "database table indexes view" bytes
  psql_ "$1" -F' ' -c "SELECT pg_database_size(current_database()), pg_table_size('sensor_readings'),
    pg_indexes_size('sensor_readings'), pg_total_relation_size('daily_aggregates')"
}

# ---- 5. Baseline: server-side COPY of the CSV, indexes after, refresh, ANALYZE ----
if [ ! -f "$fig/baseline" ]; then
  [ -f "$out/all.csv" ] || { rm -f "$fig/parquet"; echo "all.csv is gone: rerun to export it again" >&2; exit 1; }
  log "baseline: server-side COPY"
  psql_ "$url" -c "DROP DATABASE IF EXISTS bench_copy" -c "CREATE DATABASE bench_copy"
  BEMS_DEV_DATABASE_URL="$copy_url" "$bin/bems" setup --work-dir "$out/work-copy" >/dev/null
  psql_ "$copy_url" -c "ALTER TABLE sensor_readings DROP CONSTRAINT sensor_readings_sensor_id_timestamp_key" \
    -c "DROP INDEX sensor_readings_floor_number_timestamp_idx"
  chown postgres "$out/all.csv" 2>/dev/null || true; chmod a+r "$out/all.csv"; chmod a+x "$out"
  s0=$(postmaster_cpu); t0=$(clock)
  psql_ "$copy_url" -c "COPY sensor_readings (timestamp, sensor_id, floor_number, equipment_type, reading_value, unit, status) FROM '$out/all.csv' WITH (FORMAT csv, HEADER true)"
  t1=$(clock)
  psql_ "$copy_url" -c "ALTER TABLE sensor_readings ADD CONSTRAINT sensor_readings_sensor_id_timestamp_key UNIQUE (sensor_id, \"timestamp\")" \
    -c "CREATE INDEX sensor_readings_floor_number_timestamp_idx ON sensor_readings USING brin (floor_number, \"timestamp\")"
  t2=$(clock)
  psql_ "$copy_url" -c "SELECT bems.refresh_daily_aggregates(true)" >/dev/null  # the full recompute (table)
  t3=$(clock)
  psql_ "$copy_url" -c "ANALYZE sensor_readings" -c "ANALYZE daily_aggregates"
  t4=$(clock); s1=$(postmaster_cpu)
  n=$(psql_ "$copy_url" -c "SELECT count(*) FROM sensor_readings")
  [ "$n" = "$nread" ] || { echo "baseline loaded $n readings, the chunks hold $nread" >&2; exit 1; }
  read -r dbb tb ib vb < <(pgsizes "$copy_url")
  disk_mark baseline
  python3 -c "print(f'{$t1-$t0:.2f} {$t2-$t1:.2f} {$t3-$t2:.2f} {$t4-$t3:.2f} {$s1-$s0:.2f} $dbb $tb $ib $vb')" > "$fig/baseline"
  log "baseline: $(cat "$fig/baseline") (copy indexes refresh analyze server_cpu db table indexes view)"
  if [ "${BENCH_FULL_KEEP:-0}" != "1" ]; then
    psql_ "$url" -c "DROP DATABASE bench_copy"; rm -f "$out/all.csv"
  fi
fi

# ---- 6. The pipeline's database stages, the incremental day, queries (one group: redone together) ----
if [ ! -f "$fig/queries" ]; then
  rm -f "$fig/dedupe" "$fig/load" "$fig/refresh" "$fig/inc-"* "$fig/sizes"
  psql_ "$url" -c "DROP DATABASE IF EXISTS bench_bems" -c "CREATE DATABASE bench_bems"
  rm -rf "$work/dedupe" "$work/load" "$work/refresh" "$out/work-inc"
  export BEMS_DEV_DATABASE_URL="$bems_url"
  measure dedupe "$bin/bems-dedupe" --work-dir "$work"
  measure load "$bin/bems-load" --work-dir "$work"
  measure refresh "$bin/bems-refresh" --work-dir "$work"
  read -r dbb tb ib vb < <(pgsizes "$bems_url")
  echo "$dbb $tb $ib $vb" > "$fig/sizes"
  disk_mark pipeline
  # For the comparison: the materialized view bems kept before daily_aggregates became a table, same query and
  # key, refreshed concurrently after the incremental day like the old bems-refresh did.
  psql_ "$bems_url" -c "DROP MATERIALIZED VIEW IF EXISTS bench_old_aggregates" -c "CREATE MATERIALIZED VIEW bench_old_aggregates AS
    SELECT (\"timestamp\" AT TIME ZONE 'Asia/Bangkok')::date AS date, sensor_id, floor_number, equipment_type,
      AVG(reading_value) AS avg_value, MAX(reading_value) AS max_value, MIN(reading_value) AS min_value,
      COUNT(*) AS reading_count FROM sensor_readings GROUP BY 1, 2, 3, 4" \
    -c "CREATE UNIQUE INDEX ON bench_old_aggregates (date, sensor_id, floor_number, equipment_type)"
  # One more day of all 7 floors on top, in a work dir of its own (a second pipeline on the same database).
  winc="$out/work-inc"
  measure inc-validate "$bin/bems-validate" --work-dir "$winc" "$out/inc"
  measure inc-normalize "$bin/bems-normalize" --work-dir "$winc" --sample 1 "$out/inc"
  measure inc-dedupe "$bin/bems-dedupe" --work-dir "$winc"
  measure inc-load "$bin/bems-load" --work-dir "$winc"
  measure inc-refresh "$bin/bems-refresh" --work-dir "$winc"
  # The refresh's own figures (report.json): function seconds, ANALYZE seconds, mode, sensor-days.
  python3 -c "import json; r=json.load(open('$winc/refresh/runs/'+open('$winc/refresh/CURRENT').read().strip()+'/report.json')); print(r['refreshSeconds'], r['analyzeSeconds'], r['mode'], r['sensorDays'])" > "$fig/inc-refresh-report"
  # Against the old way at the same size: REFRESH ... CONCURRENTLY of the view, and a full recompute of the table.
  t0=$(clock); psql_ "$bems_url" -c "REFRESH MATERIALIZED VIEW CONCURRENTLY bench_old_aggregates"; t1=$(clock)
  psql_ "$bems_url" -c "SELECT count(*) FROM ((SELECT * FROM daily_aggregates EXCEPT SELECT * FROM bench_old_aggregates)
    UNION ALL (SELECT * FROM bench_old_aggregates EXCEPT SELECT * FROM daily_aggregates)) d" > "$fig/inc-aggregates-diff"
  [ "$(cat "$fig/inc-aggregates-diff")" = 0 ] || { echo "daily_aggregates differs from the view after the incremental day" >&2; exit 1; }
  psql_ "$bems_url" -c "DROP MATERIALIZED VIEW bench_old_aggregates"
  measure inc-refresh-full "$bin/bems-refresh" --work-dir "$winc" --force
  python3 -c "print(f'{$t1-$t0:.3f}')" > "$fig/inc-old-refresh"
  python3 -c "import json; m=json.load(open('$winc/normalize/runs/'+open('$winc/normalize/CURRENT').read().strip()+'/manifest.json')); print(m['totals']['readings'])" > "$fig/inc-readings"
  log "queries"
  bash Benchmarks/queries.sh "$bems_url" "$reps" > "$fig/queries.tmp"
  mv "$fig/queries.tmp" "$fig/queries"
fi

# ---- 7. Report: every figure also as a ratio of the baseline ----
python3 - "$fig" "$nread" "$chunk_bytes" "$csv_bytes" "$start" "$end" "$out" <<'PY'
import os, sys
fig, nread, chunk_bytes, csv_bytes, start, end, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:8]
def read(name): return open(os.path.join(fig, name)).read().split()
stages = ["validate", "normalize", "dedupe", "load", "refresh"]
s = {k: [float(x) for x in read(k)] for k in stages}
copy, idx, refresh, analyze, bcpu, bdb, btb, bib, bvb = [float(x) for x in read("baseline")]
base = copy + idx + refresh + analyze
db, tb, ib, vb = [int(x) for x in read("sizes")]
pq = read("parquet")
load_step = copy + idx
print(f"bench-full {start}..{end}: {csv_bytes/1e6:.0f} MB of CSV, {nread} readings; load {os.getloadavg()[0]:.2f} (1-min average at the end)")
print(f"{'stage':10s} {'wall s':>8s} {'M rd/s':>7s} {'client CPU s':>12s} {'server CPU s':>12s} {'peak RSS MB':>11s} {'x baseline':>10s}")
for k in stages:
    wall, user, sys_, rss, srv = s[k]
    print(f"{k:10s} {wall:8.2f} {nread/wall/1e6:7.2f} {user+sys_:12.2f} {srv:12.2f} {rss/1024:11.1f} {wall/base:10.3f}")
total = sum(v[0] for v in s.values())
print(f"baseline: COPY {copy:.2f} s + indexes {idx:.2f} s + refresh {refresh:.2f} s + ANALYZE {analyze:.2f} s = {base:.2f} s"
      f" (server CPU {bcpu:.2f} s); COPY {nread/copy/1e6:.2f} M readings/s")
print(f"end to end validate..refresh {total:.2f} s = {total/base:.3f}x the baseline (target <= 1.0x)")
print(f"load {s['load'][0]:.2f} s = {s['load'][0]/load_step:.3f}x the baseline's COPY + index build ({load_step:.2f} s),"
      f" {s['load'][0]/copy:.3f}x its COPY alone (target <= 0.833x, i.e. 1.2x faster)")
print(f"refresh {s['refresh'][0]:.2f} s = {s['refresh'][0]/(refresh+analyze):.3f}x the baseline's refresh + ANALYZE")
for k in ["validate", "normalize", "dedupe"]:
    r = nread / s[k][0] / 1e6
    print(f"{k}: {r:.2f} M readings/s (target > 5)")
print(f"peak RSS: max {max(v[3] for v in s.values())/1024:.1f} MB (target < 128 MB)")
print(f"database after the load: {db/1e9:.2f} GB = {db/nread:.1f} bytes/reading (table {tb/nread:.1f}, indexes {ib/nread:.1f},"
      f" view {vb/nread:.2f}); baseline database {bdb/1e9:.2f} GB = {db/bdb:.3f}x")
print(f"chunks {chunk_bytes} bytes = {chunk_bytes/nread:.3f} bytes/reading; Parquet (zstd 3, pyarrow) {pq[1]} bytes ="
      f" {int(pq[1])/nread:.3f} bytes/reading; chunks/parquet {chunk_bytes/int(pq[1]):.3f} (target < 1)")
inc = {k: [float(x) for x in read("inc-" + k)] for k in stages}
incn = int(read("inc-readings")[0])
three = sum(inc[k][0] for k in ["dedupe", "load", "refresh"])
print(f"incremental day ({incn} readings on top): " + ", ".join(f"{k} {inc[k][0]:.2f} s" for k in stages)
      + f"; dedupe+load+refresh {three:.2f} s (target < 10 s) = {three/base:.4f}x the baseline")
fn_s, an_s, mode, days_ = read("inc-refresh-report")
old_s = float(read("inc-old-refresh")[0])
full_wall = float(read("inc-refresh-full")[0])
print(f"incremental refresh: {mode}, {days_} sensor-days, refresh function {float(fn_s):.3f} s + ANALYZE {float(an_s):.3f} s;"
      f" the old REFRESH MATERIALIZED VIEW CONCURRENTLY at the same size {old_s:.3f} s: function {float(fn_s)/old_s:.4f}x of it"
      f" ({old_s/max(float(fn_s), 1e-6):.0f}x faster); bems-refresh --force (full recompute + ANALYZE) {full_wall:.2f} s;"
      f" daily_aggregates equals the view (EXCEPT both ways)")
marks = {n[5:]: int(open(os.path.join(fig, n)).read()) for n in os.listdir(fig) if n.startswith("disk-")}
print("disk used at each mark: " + ", ".join(f"{k} {v/1e9:.2f} GB" for k, v in sorted(marks.items()))
      + f"; needed: {max(marks.values())/1e9:.2f} GB (with BENCH_FULL_KEEP=1 the baseline's CSV and database stay)")
print("queries on the full database:")
print(open(os.path.join(fig, "queries")).read().rstrip())
PY
du -sh "$out" 2>/dev/null | awk '{print "disk used by the run (now): " $1}'
