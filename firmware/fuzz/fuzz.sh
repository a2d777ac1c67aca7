#!/bin/bash
# make fuzz: build the libFuzzer harness for _pkcs11's parsers (fuzz_parse.c)
# with clang, ASan and UBSan, then fuzz for a fixed time and report.
#
#   BUILD=<build dir> FUZZ_SECONDS=300 bash firmware/fuzz/fuzz.sh
#
# The unix port is built again with clang and the sanitizers into
# $BUILD/fuzz/unix (the harness sits in a copy of the unix variant folder, so
# it is compiled with the port's own flags), and every object but the port's
# main.o is linked with libFuzzer into $BUILD/fuzz/fuzz_parse. Seeds: keys and
# certificates made here with openssl, PEM and DER. The corpus is kept in
# $BUILD/fuzz/corpus across runs; findings land in $BUILD/fuzz/findings.
# Prints one line: executions, seconds, crashes; exits 1 on a finding.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SECONDS_BUDGET=${FUZZ_SECONDS:-300}
CC=${FUZZ_CC:-clang-14}
F=$BUILD/fuzz
MPY=$BUILD/micropython

command -v "$CC" >/dev/null || { echo "[fuzz] $CC is missing (Debian: apt install clang-14 libclang-rt-14-dev; make deps installs them)"; exit 2; }
mkdir -p "$F/variant" "$F/corpus" "$F/seeds" "$F/findings"
for f in mpconfigvariant.h mpconfigvariant.mk; do ln -sf "$ROOT/boards/unix/$f" "$F/variant/$f"; done
ln -sf "$HERE/fuzz_parse.c" "$F/variant/fuzz_parse.c"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fsanitize-address-use-after-return=never"
# MicroPython's NLR (its exceptions) as setjmp/longjmp: its x64 assembly version
# restores registers behind the sanitizers' back.
NLR="-DMICROPY_NLR_SETJMP=1"
FLAGS_ID=$(echo "$CC $SAN $NLR" | sha256sum | cut -c1-12)
if [ "$(cat "$F/unix/.flags" 2>/dev/null)" != "$FLAGS_ID" ]; then rm -rf "$F/unix"; fi
mkdir -p "$F/unix"; echo "$FLAGS_ID" > "$F/unix/.flags"
echo "[fuzz] building the unix port with $CC, ASan, UBSan and libFuzzer instrumentation -> $F/unix"
make -s -C "$MPY/ports/unix" -j"${JOBS:-2}" USER_C_MODULES="$ROOT/firmware/cmodule" MPY_LIB_DIR="$BUILD/mpylib" \
    VARIANT_DIR="$F/variant" FROZEN_MANIFEST="$ROOT/boards/unix/manifest.py" BUILD="$F/unix" \
    CC="$CC" MICROPY_PY_THREAD=0 STRIP= \
    CFLAGS_EXTRA="$SAN $NLR -fsanitize=fuzzer-no-link -fno-omit-frame-pointer -g -O1 -Wno-error -DMICROPY_HW_BOARD_NAME='\"fuzz\"' -DMICROPY_HW_MCU_NAME='\"host\"'" \
    LDFLAGS_EXTRA="$SAN" > "$F/build.log" 2>&1 \
    || { tail -n 30 "$F/build.log"; echo "[fuzz] build failed; full log: $F/build.log"; exit 1; }
find "$F/unix" -name '*.o' ! -path "$F/unix/main.o" > "$F/objs.txt"
"$CC" $SAN -fsanitize=fuzzer -o "$F/fuzz_parse" @"$F/objs.txt" -lm \
    -Wl,--wrap=mbedtls_pk_sign_restartable -Wl,--wrap=mbedtls_pk_sign_ext >> "$F/build.log" 2>&1 \
    || { tail -n 30 "$F/build.log"; echo "[fuzz] link failed; full log: $F/build.log"; exit 1; }

# Seeds: the first byte picks the parser (0 private key, 1 public key,
# 2 certificate, 3 PEM armour alone).
if [ ! -f "$F/seeds/.made" ]; then
    t=$(mktemp -d)
    (
        cd "$t"
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa.pem 2>/dev/null
        openssl ec -in ec.pem -outform DER -out ec.sec1.der 2>/dev/null
        openssl ec -in ec.pem -out ec.sec1.pem 2>/dev/null
        openssl pkcs8 -topk8 -nocrypt -in ec.pem -outform DER -out ec.p8.der
        openssl rsa -in rsa.pem -traditional -out rsa.p1.pem 2>/dev/null
        openssl pkey -in ec.pem -pubout -out ec.pub.pem
        openssl pkey -in ec.pem -pubout -outform DER -out ec.pub.der
        openssl pkey -in rsa.pem -pubout -outform DER -out rsa.pub.der
        openssl req -x509 -key ec.pem -subj /CN=fuzz -days 1 -out cert.pem 2>/dev/null
        openssl x509 -in cert.pem -outform DER -out cert.der
    )
    i=0
    seed() { { printf "\\x$1"; cat "$2"; } > "$F/seeds/s$i"; i=$((i + 1)); }
    for k in ec.pem rsa.pem ec.sec1.der ec.sec1.pem ec.p8.der rsa.p1.pem; do seed 00 "$t/$k"; done
    for k in ec.pub.pem ec.pub.der rsa.pub.der; do seed 01 "$t/$k"; done
    for k in cert.pem cert.der; do seed 02 "$t/$k"; done
    for k in ec.pem cert.pem; do seed 03 "$t/$k"; done
    rm -rf "$t"
    touch "$F/seeds/.made"
fi

echo "[fuzz] fuzzing parse_private_key, parse_public_key, parse_certificate and pem.c for $SECONDS_BUDGET s"
set +e
(cd "$F/findings" && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$F/fuzz_parse" -max_total_time="$SECONDS_BUDGET" -max_len=4096 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$F/findings/" "$F/corpus" "$F/seeds" > "$F/last-run.log" 2>&1)
rc=$?
set -e
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$F/last-run.log" | tail -1)
crashes=$(find "$F/findings" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' -o -maxdepth 1 -name 'timeout-*' -o -maxdepth 1 -name 'oom-*' | wc -l)
corpus=$(find "$F/corpus" -type f | wc -l)
echo "[fuzz] executions: ${execs:-0} in $SECONDS_BUDGET s, findings: $crashes, corpus: $corpus inputs (log: $F/last-run.log)"
if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
    grep -m 20 -E "ERROR|runtime error|SUMMARY|fuzz:" "$F/last-run.log" || true
    echo "[fuzz] FINDING: see $F/findings and $F/last-run.log"
    exit 1
fi
