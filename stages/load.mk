# load: checksum-verified dedupe chunks -> sensor_readings by binary COPY, one transaction per chunk with its
# ledger row; verify runs at the end.
.PHONY: load
load: dedupe
	$(BIN)/bems-load $(STAGE_FLAGS)
