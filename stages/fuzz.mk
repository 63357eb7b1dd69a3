# make fuzz: build the libFuzzer targets in Fuzz/Targets and run each for FUZZ_SECONDS (default 60).
# Not part of `make test`. One target: make fuzz FUZZ_TARGETS=FuzzDecimal
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
.PHONY: fuzz fuzz-build
fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash stages/fuzz.sh $(FUZZ_TARGETS)

fuzz-build: deps
	@bash stages/fuzz.sh --build-only $(FUZZ_TARGETS)
