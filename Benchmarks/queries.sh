#!/usr/bin/env bash
# The application's four query shapes against a loaded database, p50/p95 over REPS runs with varying parameters.
# usage: Benchmarks/queries.sh DATABASE_URL [REPS]
# Timings are the server round trip as psql's \timing reports it (no process start-up).
set -euo pipefail
url=${1:?usage: queries.sh DATABASE_URL [REPS]}
reps=${2:-40}
tz=Asia/Bangkok
read -r first last < <(psql "$url" -qAt -F' ' -c "SELECT min(date), max(date) FROM daily_aggregates")
days=$(( ( $(date -d "$last" +%s) - $(date -d "$first" +%s) ) / 86400 + 1 ))
sql=$(mktemp)
for i in $(seq 1 "$reps"); do
  floor=$(( (i % 7) + 1 ))
  day=$(date -d "$first + $(( i % days )) days" +%F)
  week=$(date -d "$first + $(( i % (days > 7 ? days - 6 : 1) )) days" +%F)
  sensor="f${floor}_z1_light"
  cat >> "$sql" <<SQL
\echo Q1
SELECT s.sensor_id, r."timestamp", r.reading_value FROM (SELECT DISTINCT sensor_id FROM daily_aggregates WHERE floor_number = $floor) s CROSS JOIN LATERAL (SELECT "timestamp", reading_value FROM sensor_readings WHERE sensor_id = s.sensor_id ORDER BY "timestamp" DESC LIMIT 1) r;
\echo Q2
SELECT "timestamp", reading_value, status FROM sensor_readings WHERE sensor_id = '$sensor' AND "timestamp" >= ('$day'::timestamp AT TIME ZONE '$tz') AND "timestamp" < (('$day'::date + 1)::timestamp AT TIME ZONE '$tz') ORDER BY "timestamp";
\echo Q3
SELECT date, sensor_id, equipment_type, avg_value, max_value, min_value, reading_count FROM daily_aggregates WHERE floor_number = $floor AND date >= '$first'::date AND date < '$first'::date + 31 ORDER BY date, sensor_id;
\echo Q4
SELECT date_trunc('hour', "timestamp" AT TIME ZONE '$tz') AS hour, sensor_id, avg(reading_value) FROM sensor_readings WHERE floor_number = $floor AND "timestamp" >= ('$week'::timestamp AT TIME ZONE '$tz') AND "timestamp" < (('$week'::date + 7)::timestamp AT TIME ZONE '$tz') GROUP BY 1, 2 ORDER BY 1, 2;
SQL
done
psql "$url" -q -o /dev/null -c '\timing on' -f "$sql" 2>&1 >/dev/null | true
psql "$url" -qAt -c '\timing on' -f "$sql" | awk '
  /^Q[0-9]$/ { q = $0; next }
  /^Time: / { t[q] = t[q] " " $2 }
  END {
    split("Q1 Q2 Q3 Q4", names, " ")
    label["Q1"] = "latest reading of every sensor on a floor (target p95 < 100 ms)"
    label["Q2"] = "one sensor over one day                  (target p95 < 100 ms)"
    label["Q3"] = "a floor'"'"'s daily aggregates over a month   (target p95 < 1 s)"
    label["Q4"] = "a floor'"'"'s hourly averages over a week     (target p95 < 1 s)"
    for (k = 1; k <= 4; k++) {
      q = names[k]; n = split(t[q], v, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { x = v[i]; v[i] = v[j]; v[j] = x }
      p50 = v[int((n - 1) * 0.50) + 1]; p95 = v[int((n - 1) * 0.95) + 1]
      printf "%s %s: p50 %.1f ms, p95 %.1f ms (n=%d)\n", q, label[q], p50, p95, n
    }
  }'
rm -f "$sql"
