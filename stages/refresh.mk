# refresh: REFRESH MATERIALIZED VIEW CONCURRENTLY daily_aggregates, skipped when no load changed data since.
.PHONY: refresh
refresh: load
	$(BIN)/bems-refresh $(STAGE_FLAGS)
