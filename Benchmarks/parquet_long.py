#!/usr/bin/env python3
"""Parquet (zstd level 3, pyarrow) of the long readings in one CSV, streamed, for make bench-full's size comparison.

usage: parquet_long.py LONG_CSV OUT_PARQUET
Prints "<readings> <parquet bytes>". The columns are those of compare_pyarrow.py: timestamp as timestamp[s, UTC],
sensor_id and status dictionary-encoded, reading_value decimal128(10,4), in the chunks' order, row groups of 1 M
readings (pyarrow's default size), so memory stays at a few hundred MB however big the input is.
"""
import sys
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

src, dst = sys.argv[1:3]
reader = pacsv.open_csv(src, read_options=pacsv.ReadOptions(block_size=16 << 20),
                        convert_options=pacsv.ConvertOptions(column_types={
                            "reading_value": pa.decimal128(10, 4), "timestamp": pa.string(),
                            "sensor_id": pa.string(), "status": pa.string()},
                            include_columns=["timestamp", "sensor_id", "reading_value", "status"]))
schema = pa.schema([("timestamp", pa.timestamp("s")), ("sensor_id", pa.dictionary(pa.int32(), pa.string())),
                    ("reading_value", pa.decimal128(10, 4)), ("status", pa.dictionary(pa.int32(), pa.string()))])
writer = pq.ParquetWriter(dst, schema, compression="zstd", compression_level=3)
pending, rows, total = [], 0, 0


def flush():
    global pending, rows
    if not pending:
        return
    t = pa.Table.from_batches(pending)
    ts = pc.strptime(pc.utf8_slice_codeunits(t["timestamp"], 0, 19), format="%Y-%m-%dT%H:%M:%S", unit="s")
    out = pa.table({"timestamp": ts, "sensor_id": t["sensor_id"].dictionary_encode(),
                    "reading_value": t["reading_value"], "status": t["status"].dictionary_encode()}, schema=schema)
    writer.write_table(out, row_group_size=1 << 20)
    pending, rows = [], 0


for batch in reader:
    pending.append(batch)
    rows += batch.num_rows
    total += batch.num_rows
    if rows >= 1 << 20:
        flush()
flush()
writer.close()
import os
print(total, os.path.getsize(dst))
