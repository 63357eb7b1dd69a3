# bems: make-style entry points. Each stage's rule lives in stages/<stage>.mk.
#   make demo    generate a week of all 7 floors and run the stages end to end
#   make test    unit + integration tests (starts a throwaway PostgreSQL), with line coverage
SHELL := /bin/bash
CONFIG ?= debug
SWIFT_FLAGS ?=
BIN := $(shell pwd)/.build/$(CONFIG)
ENV ?= dev
WORK ?= work
SAMPLE_DIR ?= data/sample
SAMPLE_ARGS ?= --days 7 --start 2019-03-04 --floors 1,2,3,4,5,6,7 --seed 42
SAMPLE_STAMP := $(SAMPLE_DIR)/.generated
STAGE_FLAGS ?= --env $(ENV) --work-dir $(WORK)
# SAMPLE=0.5 overrides the environment's day sample (dev and staging keep 10% of days, prod all of them).
ifneq ($(SAMPLE),)
STAGE_FLAGS += --sample $(SAMPLE)
endif
# dev without a database URL (environment or .env.dev) uses the embedded PostgreSQL in $(WORK)/pg, which the
# stage programs start themselves; staging and prod never do.

.PHONY: all deps build demo test coverage bench bench-full clean clean-work sample stop-db
all: build

deps:
	@bash stages/ensure-deps.sh --with-postgres

build: deps
	swift build -c $(CONFIG) $(SWIFT_FLAGS)

sample: $(SAMPLE_STAMP)
$(SAMPLE_STAMP): | build
	$(BIN)/bems sample --out $(SAMPLE_DIR) $(SAMPLE_ARGS)
	@touch $@

include stages/validate.mk stages/normalize.mk stages/dedupe.mk stages/load.mk stages/refresh.mk stages/ops.mk
include stages/fuzz.mk

demo: refresh
	@echo "== status =="
	@$(BIN)/bems status $(STAGE_FLAGS)

stop-db:
	@bash stages/pg-embedded.sh stop $(WORK)/pg

test: deps
	@bash stages/ensure-deps.sh --with-postgres --with-test-tools
	@bash stages/test.sh

bench: deps
	@bash Benchmarks/run.sh

# The whole dataset against server-side COPY (under an hour, ~40 GB of disk; BENCH_FULL_START/END for less).
bench-full: deps
	@bash Benchmarks/full.sh

clean-work:
	-@bash stages/pg-embedded.sh stop $(WORK)/pg >/dev/null 2>&1
	rm -rf $(WORK)

clean: clean-work
	rm -rf .build data archive
