#!/usr/bin/env python3
"""Same-run baselines for make bench: pyarrow's CSV reader on the input files, and Parquet (zstd level 3)
holding the same long readings as the bems chunks.

usage: compare_pyarrow.py CSV_DIR LONG_CSV_DIR OUT_JSON
  CSV_DIR       the wide input files (timed with pyarrow.csv.read_csv, best of 3)
  LONG_CSV_DIR  `bems inspect` dumps of every chunk (timestamp,sensor_id,...,reading_value,...)
"""
import glob, json, os, sys, time
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyarrow.compute as pc

csv_dir, long_dir, out = sys.argv[1:4]
files = sorted(glob.glob(os.path.join(csv_dir, "*.csv")))
total = sum(os.path.getsize(f) for f in files)
best = None
for _ in range(3):
    t = time.perf_counter()
    for f in files:
        pacsv.read_csv(f)
    dt = time.perf_counter() - t
    best = dt if best is None or dt < best else best
# Single-threaded too, to compare like with like per core.
opts = pacsv.ReadOptions(use_threads=False)
best1 = None
for _ in range(3):
    t = time.perf_counter()
    for f in files:
        pacsv.read_csv(f, read_options=opts)
    dt = time.perf_counter() - t
    best1 = dt if best1 is None or dt < best1 else best1

# Parquet of the long readings: timestamp as timestamp[s, UTC], sensor_id dictionary, value as decimal128(10,4),
# status dictionary; written sorted like the chunks (sensor, timestamp) and in default row-group size, zstd level 3.
tables = []
for f in sorted(glob.glob(os.path.join(long_dir, "*.csv"))):
    t = pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(column_types={
        "reading_value": pa.decimal128(10, 4), "timestamp": pa.string()}))
    tables.append(t)
long = pa.concat_tables(tables)
ts = pc.strptime(pc.utf8_slice_codeunits(long["timestamp"], 0, 19), format="%Y-%m-%dT%H:%M:%S", unit="s")
table = pa.table({
    "timestamp": ts,
    "sensor_id": long["sensor_id"].dictionary_encode(),
    "reading_value": long["reading_value"],
    "status": long["status"].dictionary_encode(),
})
path = os.path.join(long_dir, "readings.parquet")
pq.write_table(table, path, compression="zstd", compression_level=3)
readings = table.num_rows
result = {
    "csv_bytes": total,
    "pyarrow_read_csv_seconds": best,
    "pyarrow_read_csv_mb_s": total / best / 1e6,
    "pyarrow_read_csv_single_thread_seconds": best1,
    "pyarrow_read_csv_single_thread_mb_s": total / best1 / 1e6,
    "parquet_readings": readings,
    "parquet_bytes": os.path.getsize(path),
    "parquet_bytes_per_reading": os.path.getsize(path) / readings,
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
