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

.PHONY: all deps build demo test coverage bench clean clean-work sample
all: build

deps:
	@bash stages/ensure-deps.sh --with-postgres

build: deps
	swift build -c $(CONFIG) $(SWIFT_FLAGS)

sample: $(SAMPLE_STAMP)
$(SAMPLE_STAMP): | build
	$(BIN)/bems sample --out $(SAMPLE_DIR) $(SAMPLE_ARGS)
	@touch $@

include stages/validate.mk stages/normalize.mk stages/ops.mk

demo: normalize
	@echo "== status =="
	@$(BIN)/bems status $(STAGE_FLAGS)

test: deps
	@bash stages/test.sh

bench: deps
	@bash Benchmarks/run.sh

clean-work:
	rm -rf $(WORK)

clean: clean-work
	rm -rf .build data archive
