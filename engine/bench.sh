#!/usr/bin/env bash
# engine/bench.sh [BUILD_DIR]: the hsmtls engine against libp11's pkcs11 engine, in one
# run, on a fresh SoftHSM2 sandbox.
#   1. engine_bench: sign ops/s (EVP_DigestSign on ENGINE_load_private_key keys) and
#      in-process TLS 1.3 handshakes/s, P-256 and RSA-2048, one thread;
#   2. openssl s_server -engine ID -keyform engine -key URI, driven by
#      `openssl s_time -new` (full TLS 1.3 handshakes over loopback).
# Both engines use the same token: one holding only the sandbox's RSA-2048 and P-256
# keys, because libp11 0.4.12 cannot enumerate a token that also holds EdDSA keys.
# Environment: BENCH_SECONDS (default 2) per measurement, BENCH_ROUNDS (default 3): the
# engines take turns that many times and each figure is the best of its rounds.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
SECONDS_EACH=${BENCH_SECONDS:-2}
# s_time takes whole seconds: one more than each figure's time, rounded down.
STIME=$(awk -v s="$SECONDS_EACH" 'BEGIN { printf "%d", s + 1 }')
ROUNDS=${BENCH_ROUNDS:-3}
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so
LIBP11=$(pkg-config --variable=enginesdir libcrypto)/pkcs11.so
[ -x "$BUILD/bin/engine_bench" ] || { echo "bench.sh: build $BUILD first" >&2; exit 1; }
[ -r "$LIBP11" ] || { echo "bench.sh: $LIBP11 missing (apt-get install libengine-pkcs11-openssl)" >&2; exit 1; }

WORK=$(mktemp -d)
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

"$ROOT/softhsm/sandbox" "$WORK/sb" >/dev/null
mkdir -p "$WORK/ref/tokens"
cat >"$WORK/ref/softhsm2.conf" <<EOF
directories.tokendir = $WORK/ref/tokens
objectstore.backend = file
log.level = ERROR
EOF
export SOFTHSM2_CONF=$WORK/ref/softhsm2.conf
unset HSMTLS_PKCS11_MODULE HSMTLS_DEBUG OPENSSL_ENGINES
softhsm2-util --init-token --free --label ref --so-pin 12345678 --pin 1234 >/dev/null
softhsm2-util --import "$WORK/sb/soft/rsa2048.key" --label rsa2048 --id 01 --token ref --pin 1234 >/dev/null
softhsm2-util --import "$WORK/sb/soft/ec-p256.key" --label ec-p256 --id 03 --token ref --pin 1234 >/dev/null

# No provider in openssl.cnf: the hsmtls engine loads it itself.
: >"$WORK/empty.cnf"
export OPENSSL_CONF=$WORK/empty.cnf

echo "== engine_bench: ${SECONDS_EACH}s per figure, best of $ROUNDS rounds, one thread (openssl $(openssl version | cut -d' ' -f2), $(nproc) CPUs, $(date -u +%Y-%m-%d))"
"$BUILD/bin/engine_bench" -t "$SECONDS_EACH" -r "$ROUNDS" --module "$SOFTHSM" --pin 1234 \
    --hsmtls "$BUILD/lib/engines-3/hsmtls.so" --libp11 "$LIBP11" \
    --ec "pkcs11:token=ref;object=ec-p256" --ec-cert "$WORK/sb/certs/ec-p256.pem" \
    --rsa "pkcs11:token=ref;object=rsa2048" --rsa-cert "$WORK/sb/certs/rsa2048.pem"

# The same engines in the openssl CLI server; MODULE_PATH and PIN from openssl.cnf.
engine_conf() { # engine_conf ID SO
    cat <<EOF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
$1 = $1_section
[$1_section]
engine_id = $1
dynamic_path = $2
MODULE_PATH = $SOFTHSM
PIN = 1234
init = 0
EOF
}
engine_conf hsmtls "$BUILD/lib/engines-3/hsmtls.so" >"$WORK/hsmtls.cnf"
engine_conf pkcs11 "$LIBP11" >"$WORK/pkcs11.cnf"

port=$((20000 + RANDOM % 20000))
# s_time_rate ID KEY: handshakes/s of one s_server run, or "failed".
s_time_rate() {
    local id=$1 key=$2 rate
    port=$((port + 1))
    OPENSSL_CONF=$WORK/$id.cnf openssl s_server -engine "$id" -keyform engine \
        -key "pkcs11:token=ref;object=$key" -cert "$WORK/sb/certs/$key.pem" \
        -accept "127.0.0.1:$port" -www -quiet -num_tickets 0 </dev/null >"$WORK/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    rate=$(openssl s_time -connect "127.0.0.1:$port" -new -time $STIME 2>&1 |
        sed -n 's/^\([0-9]*\) connections in \([0-9.]*\) real seconds.*/\1 \2/p' |
        awk '{ if ($2 > 0) printf "%.0f", $1 / $2 }')
    kill "$SERVER" 2>/dev/null
    wait "$SERVER" 2>/dev/null || true
    SERVER=
    [ -n "$rate" ] || { cat "$WORK/server.log" >&2; rate=failed; }
    echo "$rate"
}

echo
echo "== openssl s_time -new -time $STIME against openssl s_server -engine ID (TLS 1.3, loopback), best of $ROUNDS"
printf '%-16s %-9s %14s\n' engine key "handshakes/s"
declare -A best
for _ in $(seq "$ROUNDS"); do
    for key in ec-p256 rsa2048; do
        for id in hsmtls pkcs11; do
            r=$(s_time_rate "$id" "$key")
            if [ "$r" != failed ] && [ "${best[$id.$key]:-0}" != failed ] && [ "$r" -gt "${best[$id.$key]:-0}" ]; then
                best[$id.$key]=$r
            elif [ "$r" = failed ]; then
                best[$id.$key]=failed
            fi
        done
    done
done
for key in ec-p256 rsa2048; do
    for id in hsmtls pkcs11; do
        rate=${best[$id.$key]}
        name=$id
        [ "$id" = pkcs11 ] && name="libp11 (pkcs11)"
        printf '%-16s %-9s %14s\n' "$name" "$([ "$key" = ec-p256 ] && echo P-256 || echo RSA-2048)" "$rate"
    done
done
