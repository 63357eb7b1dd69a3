# dedupe: normalize chunks -> insert/update chunks, classified against the database (reads only affected ranges).
# With ENV=dev and no BEMS_DEV_DATABASE_URL, the embedded PostgreSQL in $(WORK)/pg is started and used.
.PHONY: dedupe
dedupe: normalize
	$(BIN)/bems-dedupe $(STAGE_FLAGS)
