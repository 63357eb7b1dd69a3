#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/Targets and runs each for a bounded time.
#
#   bash stages/fuzz.sh [TARGET ...]        (default: every target; FUZZ_SECONDS per target, default 60)
#   bash stages/fuzz.sh --build-only
#
# How it builds: swift-crypto and swift-log come from the ordinary `swift build` (.build/debug, not instrumented);
# BEMSCore is compiled again with swiftc, -O and -sanitize=fuzzer,address, as one module object in
# .build-fuzz/, and each target links against it. Only BEMSCore gets coverage feedback, which is what we fuzz.
# Each target starts from the committed seeds in Fuzz/corpus/<target>/ plus what earlier runs found
# (.build-fuzz/corpus/<target>/, not committed); crashing inputs go to Fuzz/crashes/<target>-*.
# The script exits non-zero when any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/.build-fuzz
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
ALL_TARGETS=(FuzzDecimal FuzzTimestamp FuzzWideRow FuzzScanner FuzzChunkDecode)
BUILD_ONLY=0
TARGETS=()
for arg in "$@"; do
    case "$arg" in
    --build-only) BUILD_ONLY=1 ;;
    *) TARGETS+=("$arg") ;;
    esac
done
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")

# 1. Dependencies, built the ordinary way (no sanitizer): swift-crypto, swift-log and their C parts.
swift build --target BEMSCore >&2
DEPS=$ROOT/.build/debug
mkdir -p "$OUT"

# Module maps of every C target of the dependency graph, plus our two system libraries.
CFLAGS=(-Xcc -fmodule-map-file="$ROOT/Sources/CZstd/module.modulemap"
    -Xcc -fmodule-map-file="$ROOT/Sources/CLibPQ/module.modulemap" -Xcc -I/usr/include/postgresql)
while IFS= read -r map; do CFLAGS+=(-Xcc -fmodule-map-file="$map"); done < <(find "$DEPS" -maxdepth 2 -name module.modulemap)
while IFS= read -r inc; do CFLAGS+=(-Xcc -I"$inc"); done < <(find "$ROOT/.build/checkouts" -type d -name include -path '*/Sources/*')
# Object files of the dependencies (everything SwiftPM built except BEMSCore itself and executables).
DEP_OBJECTS=()
for dir in "$DEPS"/*.build; do
    case "$(basename "$dir")" in
    BEMSCore.build | bems*.build | BEMS*.build | *Tests.build | ArgumentParser*.build) continue ;;
    esac
    while IFS= read -r o; do DEP_OBJECTS+=("$o"); done < <(find "$dir" -name '*.o')
done

# 2. BEMSCore, instrumented, as one module + one object (whole-module optimization).
STAMP=$OUT/BEMSCore.o
if [ ! -f "$STAMP" ] || [ -n "$(find Sources/BEMSCore -name '*.swift' -newer "$STAMP" | head -1)" ]; then
    echo "fuzz: compiling BEMSCore with -sanitize=fuzzer,address" >&2
    swiftc -module-name BEMSCore -package-name bems -parse-as-library -O -wmo -enable-testing \
        -sanitize=fuzzer,address -I "$DEPS/Modules" "${CFLAGS[@]}" \
        -emit-module -emit-module-path "$OUT/BEMSCore.swiftmodule" -c -o "$STAMP" \
        $(find Sources/BEMSCore -name '*.swift' | sort)
fi

# 3. One binary per target.
for t in "${TARGETS[@]}"; do
    if [ ! -x "$OUT/$t" ] || [ "$STAMP" -nt "$OUT/$t" ] || [ "Fuzz/Targets/$t.swift" -nt "$OUT/$t" ]; then
        echo "fuzz: linking $t" >&2
        swiftc -module-name "$t" -parse-as-library -Onone -sanitize=fuzzer,address -I "$OUT" -I "$DEPS/Modules" \
            "${CFLAGS[@]}" "Fuzz/Targets/$t.swift" "$STAMP" "${DEP_OBJECTS[@]}" -lzstd -lpq -lstdc++ -o "$OUT/$t"
    fi
done
[ $BUILD_ONLY = 1 ] && exit 0

# 4. Run each target for a bounded time. -fork is not used: 2 shared cores. The Swift backtracer is off: under ASan
# it reports its own reads as overflows; ASan and libFuzzer print the stack.
export SWIFT_BACKTRACE=enable=no
mkdir -p Fuzz/crashes
failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "Fuzz/corpus/$t"
    if [ "$t" = FuzzChunkDecode ] && [ -z "$(ls -A Fuzz/corpus/$t)" ]; then
        BEMS_FUZZ_SEED_DIR="Fuzz/corpus/$t" "$OUT/$t" # writes real chunks made by ChunkWriter, then exits
    fi
    echo "== $t: ${SECONDS_PER_TARGET}s, corpus Fuzz/corpus/$t ($(ls "Fuzz/corpus/$t" | wc -l) inputs) ==" >&2
    dict=()
    [ -f "Fuzz/dict/$t.dict" ] && dict=(-dict="Fuzz/dict/$t.dict")
    mkdir -p "$OUT/corpus/$t"
    # New inputs go to the first folder (.build-fuzz/corpus/<target>, not committed); Fuzz/corpus/<target> holds
    # the committed seeds and regression inputs and is only read.
    if ! "$OUT/$t" "$OUT/corpus/$t" "Fuzz/corpus/$t" "${dict[@]}" -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="Fuzz/crashes/$t-" \
        2>"$OUT/$t.log"; then
        failed+=("$t")
    fi
    tail -n 25 "$OUT/$t.log" >&2  # the whole run's output stays in .build-fuzz/<target>.log
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]}; inputs in Fuzz/crashes/ (reproduce: .build-fuzz/<target> <file>)" >&2
    exit 1
fi
echo "fuzz: no crashes in ${TARGETS[*]}" >&2
