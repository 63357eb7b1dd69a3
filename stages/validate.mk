# validate: stream every input CSV, write report.json and dead-letter.jsonl under $(WORK)/validate.
# Up-to-date checks are content-based (input SHA-256 + settings), inside the tool: rerunning is always safe.
.PHONY: validate
validate: build $(SAMPLE_STAMP)
	$(BIN)/bems-validate $(STAGE_FLAGS)
