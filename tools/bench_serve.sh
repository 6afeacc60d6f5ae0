#!/bin/bash
# Handshakes per second of `hsmtls serve` with a token key and with the same key from a
# file, against `openssl s_server` with the same key, the same client, in one run; then
# the memory `hsmtls serve` holds per idle connection.
#
# usage: tools/bench_serve.sh SANDBOX_DIR [SECONDS] [CLIENTS] [IDLE]
#   SANDBOX_DIR  a sandbox made by softhsm/sandbox (its env.sh is sourced)
#   SECONDS      how long each server is measured (default 10)
#   CLIENTS      client processes handshaking at once (default 1: openssl s_server
#                serves one connection at a time, so more only queue there)
#   IDLE         idle connections held for the memory figure (default 500)
# HSMTLS_BUILD_DIR picks the build (default: build/ beside this script's directory).
# OPENSSL_PRELOAD, when set, is LD_PRELOADed into openssl s_server (a sanitized build's
# provider needs libasan there).
#
# The client is Python's ssl module (OpenSSL underneath), CLIENTS processes in a loop:
# connect, full TLS 1.3 handshake verifying the server against the sandbox CA (no
# resumption), close. Each server runs one thread, as both do.
set -euo pipefail

box=${1:?usage: $0 SANDBOX_DIR [SECONDS] [CLIENTS] [IDLE]}
secs=${2:-10}
clients=${3:-1}
idle=${4:-500}
here=$(cd "$(dirname "$0")/.." && pwd)
build=${HSMTLS_BUILD_DIR:-$here/build}
hsmtls=$build/bin/hsmtls
[ -x "$hsmtls" ] || { echo "bench_serve: no $hsmtls (build first)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$box/env.sh"
labels=${BENCH_LABELS:-"ec-p256 rsa2048"}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # port pid
    for _ in $(seq 400); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# Handshakes per second against 127.0.0.1:PORT (the python client never reads
# openssl.cnf, so it loads no provider).
measure() { # port
    OPENSSL_CONF= LD_PRELOAD= python3 - "$1" "$secs" "$clients" "$box/ca.pem" <<'PY'
import multiprocessing, socket, ssl, sys, time
port, secs, n, ca = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def run(q):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    count, fail, end = 0, 0, time.monotonic() + secs
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    count += 1
        except OSError:
            fail += 1
    q.put((count, fail))
q = multiprocessing.Queue()
procs = [multiprocessing.Process(target=run, args=(q,)) for _ in range(n)]
t0 = time.monotonic()
for p in procs: p.start()
res = [q.get() for _ in procs]
for p in procs: p.join()
elapsed = time.monotonic() - t0
ok, bad = sum(r[0] for r in res), sum(r[1] for r in res)
if bad > ok // 100 + 1:
    sys.exit(f"{bad} failed handshakes")
print(f"{ok / elapsed:.1f}")
PY
}

run_server() { # kind key-ref label -> prints handshakes/s
    local kind=$1 key=$2 label=$3 port pid rate
    port=$(free_port)
    if [ "$kind" = hsmtls ]; then
        "$hsmtls" serve --port "$port" --bind 127.0.0.1 --cert "$box/certs/$label.pem" --key "$key" \
            --max-clients 1000 2>/dev/null &
    else
        LD_PRELOAD=${OPENSSL_PRELOAD:-} ASAN_OPTIONS=${OPENSSL_PRELOAD:+detect_leaks=0} \
            openssl s_server -accept "127.0.0.1:$port" -cert "$box/certs/$label.pem" -key "$key" \
            -quiet -tls1_3 </dev/null >/dev/null 2>&1 &
    fi
    pid=$!
    if ! wait_port "$port" "$pid"; then
        echo "bench_serve: $kind with $key did not start" >&2
        kill "$pid" 2>/dev/null || true
        return 1
    fi
    rate=$(measure "$port") || { kill "$pid"; return 1; }
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "$rate"
}

echo "# hsmtls bench_serve: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(openssl version)"
echo "# TLS 1.3 full handshakes/s, $clients client processes, ${secs}s per server; ratio = hsmtls / s_server"
printf '%-10s %-6s %14s %18s %7s\n' key where "hsmtls serve" "openssl s_server" ratio
for label in $labels; do
    for where in file token; do
        if [ "$where" = file ]; then
            key=$box/soft/$label.key
        else
            key="pkcs11:token=server;object=$label;type=private?pin-value=1234"
        fi
        ours=$(run_server hsmtls "$key" "$label")
        theirs=$(run_server openssl "$key" "$label")
        printf '%-10s %-6s %12s/s %16s/s %7s\n' "$label" "$where" "$ours" "$theirs" \
            "$(python3 -c "print(f'{$ours / $theirs:.3f}')")"
    done
done

# Memory per idle connection: RSS of hsmtls serve before and after IDLE clients that
# finished their handshake and then sit idle.
port=$(free_port)
"$hsmtls" serve --port "$port" --bind 127.0.0.1 --cert "$box/certs/ec-p256.pem" \
    --key "$box/soft/ec-p256.key" --max-clients $((idle + 50)) 2>/dev/null &
pid=$!
wait_port "$port" "$pid" || { echo "bench_serve: hsmtls serve did not start" >&2; exit 1; }
OPENSSL_CONF= LD_PRELOAD= python3 - "$port" "$idle" "$box/ca.pem" "$pid" <<'PY'
import resource, socket, ssl, sys, time
port, n, ca, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 100)), hard))
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
ctx = ssl.create_default_context(cafile=ca)
def one():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname="localhost")
    s.sendall(b"x\n"); s.recv(10)  # the server has finished its side, tickets sent
    return s
warm = [one() for _ in range(20)]  # the first ones pay for lazily set up state
time.sleep(0.3)
before = rss()
conns = [one() for _ in range(n)]
time.sleep(0.3)
after = rss()
print(f"# memory: hsmtls serve RSS {before} KiB with 20 idle connections, {after} KiB with {n + 20}: "
      f"{(after - before) * 1024 / n / 1024:.1f} KiB per idle TLS 1.3 connection (ec-p256 file key)")
for s in conns + warm:
    s.close()
PY
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
