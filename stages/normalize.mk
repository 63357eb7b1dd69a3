# normalize: validated CSV -> zstd columnar chunks under $(WORK)/normalize/runs/<run>/chunks.
# Runs validate first (a no-op when it is up to date).
.PHONY: normalize
normalize: validate
	$(BIN)/bems-normalize $(STAGE_FLAGS)
