# Operator targets around the stages.
.PHONY: status setup verify rollback archive

status: build
	$(BIN)/bems status $(STAGE_FLAGS)

setup: build
	$(BIN)/bems setup $(STAGE_FLAGS)

verify: build
	$(BIN)/bems verify $(STAGE_FLAGS)

# make rollback STAGE=normalize [RUN=id]   (file stages return to their previous run; load reverts a committed run)
rollback: build
	@test -n "$(STAGE)" || { echo "usage: make rollback STAGE=validate|normalize|dedupe|load [RUN=id]" >&2; exit 64; }
	$(BIN)/bems rollback $(STAGE) $(RUN) $(STAGE_FLAGS)

# make archive: pack the current normalize run (manifest + chunks) into archive/normalize-<run>.tar.
# Chunks are already zstd-compressed and self-verifying; tar adds no compression.
archive: build
	@run=$$(cat $(WORK)/normalize/CURRENT 2>/dev/null); \
	 test -n "$$run" || { echo "no current normalize run to archive" >&2; exit 66; }; \
	 mkdir -p archive && tar -cf archive/normalize-$$run.tar -C $(WORK)/normalize/runs/$$run manifest.json chunks && \
	 echo "archive/normalize-$$run.tar"
