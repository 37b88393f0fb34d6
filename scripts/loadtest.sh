#!/usr/bin/env bash
# Load test of the demo BFF: wrk against GET /api/now with tracing on and then off, same release
# binaries, same run. Everything runs on 127.0.0.1 free ports and is stopped on exit.
#
# Two scenarios (LOADTEST_SCENARIOS, both by default):
#   demo  the whole reference architecture: BFF -> backend1 + backend2 -> moto (DynamoDB), all
#         three services traced, xray-local as the daemon. moto (Python) caps the throughput.
#   stub  the BFF alone against two stub backends (a tiny asyncio HTTP server answering fixed
#         JSON, not traced): the BFF is the bottleneck, so this is the figure for "what does
#         tracing cost the BFF".
# Each scenario runs, per round, these arms (LOADTEST_ARMS, all by default):
#   on       AWS_XRAY_SDK_ENABLED=true, xray-local as the daemon (every /api/* request sampled:
#            config/sampling-rules.json locally and xray-local's centralized rules both say rate 1)
#   off      AWS_XRAY_SDK_ENABLED=false: the untraced run of the same load
#   stopped  tracing on, the daemon address a port where nothing listens
#   slow     tracing on, the daemon a receiver that reads slowly (LOADTEST_SLOW_RATE datagrams a
#            second from a 64 KiB socket buffer; the kernel drops what does not fit)
#   restart  tracing on, an xray-local of its own that is stopped a third into the measurement
#            and started again (same ports) at two thirds
# Per arm: a warm-up, then wrk --latency for the duration, the BFF's VmRSS every second, and the
# documents. On the SDK side, from each service's GET /debug/xray-stats: queued = sent +
# send_errors + dropped_too_large (+ pending), and produced = queued + dropped_queue_full. On
# the daemon side: delivered (xray-local's Accepted, from /api/stats, summed over both lives of
# the restarted one; the slow receiver's own count), and lost after sending = sent - delivered
# - collector rejects (UDP: nobody listening, or the kernel's drops at a full socket buffer,
# which the slow arm reads from /proc/net/udp).
#
# Usage: scripts/loadtest.sh
#   LOADTEST_DURATION=60       seconds of measurement per arm (default 60)
#   LOADTEST_WARMUP=5          seconds of unmeasured load before each arm (default 5)
#   LOADTEST_THREADS=1         wrk threads (default 1: one wrk thread drives far more than the
#                              BFF serves here, and leaves the second core to the services)
#   LOADTEST_CONNECTIONS=32    wrk connections (default 32)
#   LOADTEST_ROUNDS=1          repeat on/off pairs to see the noise (default 1; even rounds run
#                              tracing off first); the ratio uses the mean of each arm's req/s
#   LOADTEST_SCENARIOS="demo stub"
#   LOADTEST_ARMS="on off stopped slow restart"
#   LOADTEST_SLOW_RATE=200     datagrams a second the slow receiver reads (default 200)
#   LOADTEST_SAMPLING=all      all: every /api/* request sampled (the demo's rules, the worst
#                              case); default: the SDK's default rule (1 request per second,
#                              then 5 %), locally and in xray-local's centralized rules, which
#                              is what a service runs with unless it configures sampling
#   LOADTEST_OUT=target/loadtest/<time>   results, logs, RSS series, the binaries used
#   LOADTEST_NO_BUILD=1        use the release binaries already in target/release
# Needs: cargo, curl, python3 (moto; scripts/ensure-moto.sh installs it), wrk (installed with
# apt-get when missing and running as root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

fail() {
    printf 'loadtest: %s\n' "$*" >&2
    exit 1
}
say() {
    printf '%s\n' "$*"
}

int_setting() {
    local name="$1" default="$2" min="$3" max="$4" value
    value="${!name:-${default}}"
    if ! [[ "${value}" =~ ^[0-9]{1,6}$ ]] || ((10#${value} < min || 10#${value} > max)); then
        fail "${name}: \`${value}\` is not a whole number from ${min} to ${max}"
    fi
    printf '%s\n' "$((10#${value}))"
}

DURATION="$(int_setting LOADTEST_DURATION 60 1 3600)"
WARMUP="$(int_setting LOADTEST_WARMUP 5 0 600)"
THREADS="$(int_setting LOADTEST_THREADS 1 1 64)"
CONNECTIONS="$(int_setting LOADTEST_CONNECTIONS 32 1 10000)"
ROUNDS="$(int_setting LOADTEST_ROUNDS 1 1 20)"
SCENARIOS="${LOADTEST_SCENARIOS:-demo stub}"
ARMS="${LOADTEST_ARMS:-on off stopped slow restart}"
SLOW_RATE="$(int_setting LOADTEST_SLOW_RATE 200 1 1000000)"
SAMPLING="${LOADTEST_SAMPLING:-all}"
[[ "${SAMPLING}" == all || "${SAMPLING}" == default ]] \
    || fail "LOADTEST_SAMPLING: unknown value \`${SAMPLING}\` (all, default)"
for s in ${SCENARIOS}; do
    [[ "${s}" == demo || "${s}" == stub ]] || fail "LOADTEST_SCENARIOS: unknown scenario \`${s}\` (demo, stub)"
done
for a in ${ARMS}; do
    case "${a}" in
        on | off | stopped | slow | restart) ;;
        *) fail "LOADTEST_ARMS: unknown arm \`${a}\` (on, off, stopped, slow, restart)" ;;
    esac
done
((THREADS <= CONNECTIONS)) || fail "LOADTEST_THREADS must not exceed LOADTEST_CONNECTIONS"
OUT="${LOADTEST_OUT:-${ROOT}/target/loadtest/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "${OUT}" || fail "cannot create ${OUT}"
OUT="$(cd "${OUT}" && pwd)"

# ---------------------------------------------------------------------------------------------
# Tools

command -v cargo >/dev/null 2>&1 || fail "cargo is required (install Rust from https://rustup.rs)"
command -v curl >/dev/null 2>&1 || fail "curl is required (Debian/Ubuntu: apt-get install -y curl)"
PYTHON="$(command -v python3 || true)"
[[ -n "${PYTHON}" ]] || fail "python3 is required (Debian/Ubuntu: apt-get install -y python3)"
if ! command -v wrk >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "==> Installing wrk (apt-get install wrk)"
        apt-get update -qq >&2 || fail "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2 || fail "apt-get install wrk failed"
    else
        fail "wrk is required and not installed; install it as root (Debian/Ubuntu: sudo apt-get install -y wrk) and run again"
    fi
fi
command -v wrk >/dev/null 2>&1 || fail "wrk is still missing after installing it"

# ---------------------------------------------------------------------------------------------
# Processes: everything started is recorded by PID and stopped by PID on exit.

PIDS=()
cleanup() {
    local pid i
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid="${PIDS[i]}"
        kill -TERM "${pid}" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "${pid}" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "${pid}" 2>/dev/null || true
        wait "${pid}" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: runs CMD in the background, output to ${OUT}/NAME.log; sets STARTED_PID.
STARTED_PID=""
start() {
    local name="$1"
    shift
    "$@" >"${OUT}/${name}.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("${STARTED_PID}")
}

# stop PID: SIGTERM (the services flush their recorder on it), SIGKILL after 5 s.
stop() {
    local pid="$1" keep=() p
    kill -TERM "${pid}" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
    for p in "${PIDS[@]}"; do
        [[ "${p}" == "${pid}" ]] || keep+=("${p}")
    done
    PIDS=("${keep[@]}")
}

# wait_http URL SECONDS PID NAME [any]: until URL answers 2xx (any status with `any`); fails if
# PID exits or time runs out.
wait_http() {
    local url="$1" secs="$2" pid="$3" name="$4" deadline fail_flag=-f
    [[ "${5:-}" == any ]] && fail_flag=-s
    deadline=$((SECONDS + secs))
    until curl "${fail_flag}" -sS -m 2 -o /dev/null "${url}" 2>/dev/null; do
        kill -0 "${pid}" 2>/dev/null || fail "${name} exited; see ${OUT}/${name}.log"
        ((SECONDS < deadline)) || fail "${name} did not answer ${url} within ${secs} s; see ${OUT}/${name}.log"
        sleep 0.2
    done
}

# free_ports N: N distinct ports free on 127.0.0.1 for TCP and UDP (UDP matters for the daemon).
free_ports() {
    "${PYTHON}" - "$1" <<'EOF'
import socket, sys
n, held, ports = int(sys.argv[1]), [], []
while len(ports) < n:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close(); u.close(); continue
    held += [t, u]
    ports.append(port)
print(" ".join(map(str, ports)))
EOF
}

# json_get FILE KEY...: prints FILE's value at the path of keys (0 when absent).
json_get() {
    "${PYTHON}" - "$@" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v.get(k, 0) if isinstance(v, dict) else 0
print(v if v is not None else 0)
EOF
}

# ---------------------------------------------------------------------------------------------
# Build

TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
if [[ "${LOADTEST_NO_BUILD:-0}" == 1 ]]; then
    say "==> Using the release binaries already in ${TARGET_DIR}/release (LOADTEST_NO_BUILD=1)"
else
    say "==> Building release binaries (cargo build --release -p xray-demo --bins -p xray-local)"
    cargo build --release --quiet -p xray-demo --bins -p xray-local --bin xray-local \
        || fail "the build failed (see the errors above; LOADTEST_NO_BUILD=1 uses the binaries already built)"
fi
# A private copy: every arm runs the very same binaries even if target/ is rebuilt meanwhile.
BIN="${OUT}/bin"
mkdir -p "${BIN}"
for b in bff backend1 backend2 xray-local; do
    cp "${TARGET_DIR}/release/${b}" "${BIN}/${b}" 2>/dev/null \
        || fail "${TARGET_DIR}/release/${b} is missing (build: cargo build --release -p xray-demo --bins -p xray-local)"
done
CONFIG="${ROOT}/examples/reference/config"
SDK_RULES="${CONFIG}/sampling-rules.json"
COLLECTOR_RULES="${CONFIG}/xray-local-rules.json"
if [[ "${SAMPLING}" == default ]]; then
    # The SDK's default rule, and /health never sampled, as in the demo's own rules.
    SDK_RULES="${OUT}/sampling-rules-default.json"
    COLLECTOR_RULES="${OUT}/xray-local-rules-default.json"
    cat >"${SDK_RULES}" <<'EOF'
{
  "version": 2,
  "default": { "fixed_target": 1, "rate": 0.05 },
  "rules": [
    { "description": "health", "host": "*", "http_method": "GET", "url_path": "/health", "fixed_target": 0, "rate": 0 }
  ]
}
EOF
    cat >"${COLLECTOR_RULES}" <<'EOF'
{
  "rules": [
    { "RuleName": "health", "Priority": 1, "FixedRate": 0, "ReservoirSize": 0, "HTTPMethod": "GET", "URLPath": "/health" },
    { "RuleName": "Default", "Priority": 10000, "FixedRate": 0.05, "ReservoirSize": 1 }
  ]
}
EOF
fi
say "==> Sampling: ${SAMPLING} (SDK rules ${SDK_RULES}, collector rules ${COLLECTOR_RULES})"

# ---------------------------------------------------------------------------------------------
# Shared infrastructure: xray-local (the daemon), moto (demo scenario), stubs (stub scenario)

read -r XRAY_PORT XRAY_UI_PORT MOTO_PORT STUB1_PORT STUB2_PORT <<<"$(free_ports 5)"
XRAY_UI="http://127.0.0.1:${XRAY_UI_PORT}"

say "==> xray-local (daemon 127.0.0.1:${XRAY_PORT}, UI ${XRAY_UI})"
start xray-local "${BIN}/xray-local" --udp "127.0.0.1:${XRAY_PORT}" --tcp "127.0.0.1:${XRAY_PORT}" \
    --ui "127.0.0.1:${XRAY_UI_PORT}" --rules "${COLLECTOR_RULES}" --settle-secs 5
XRAY_PID="${STARTED_PID}"
wait_http "${XRAY_UI}/api/stats" 30 "${XRAY_PID}" xray-local

if [[ " ${SCENARIOS} " == *" demo "* ]]; then
    say "==> moto as DynamoDB on 127.0.0.1:${MOTO_PORT}"
    MOTO="$("${ROOT}/scripts/ensure-moto.sh")" || fail "moto is needed for the demo scenario (or run LOADTEST_SCENARIOS=stub)"
    start moto "${MOTO}" -H 127.0.0.1 -p "${MOTO_PORT}"
    MOTO_PID="${STARTED_PID}"
    wait_http "http://127.0.0.1:${MOTO_PORT}/" 60 "${MOTO_PID}" moto any
    # The table the backends write to (what the demo's ensure_table does), with moto's boto3.
    "$(dirname "${MOTO}")/python" - "http://127.0.0.1:${MOTO_PORT}" <<'EOF' || fail "cannot create the table in moto"
import sys, boto3
c = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing")
if "xray-demo" not in c.list_tables()["TableNames"]:
    c.create_table(TableName="xray-demo", BillingMode="PAY_PER_REQUEST",
                   KeySchema=[{"AttributeName": "SubAppId", "KeyType": "HASH"}],
                   AttributeDefinitions=[{"AttributeName": "SubAppId", "AttributeType": "S"}])
EOF
fi

if [[ " ${SCENARIOS} " == *" stub "* ]]; then
    say "==> stub backends on 127.0.0.1:${STUB1_PORT} (date) and :${STUB2_PORT} (time)"
    cat >"${OUT}/stub_backends.py" <<'EOF'
# Answers every HTTP/1.1 request (GET, no body) with a fixed JSON, keep-alive, no parsing.
import asyncio, sys

def protocol(body):
    reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    class Stub(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, b""
        def data_received(self, data):
            self.buf += data
            n = self.buf.count(b"\r\n\r\n")
            if n:
                self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
                self.transport.write(reply * n)
    return Stub

async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(protocol(b'{"date":"2025-01-01","backend":"stub1"}'), "127.0.0.1", int(sys.argv[1]))
    await loop.create_server(protocol(b'{"time":"12:00:00","backend":"stub2"}'), "127.0.0.1", int(sys.argv[2]))
    await asyncio.Event().wait()

asyncio.run(main())
EOF
    start stubs "${PYTHON}" "${OUT}/stub_backends.py" "${STUB1_PORT}" "${STUB2_PORT}"
    STUBS_PID="${STARTED_PID}"
    wait_http "http://127.0.0.1:${STUB1_PORT}/health" 30 "${STUBS_PID}" stubs
    wait_http "http://127.0.0.1:${STUB2_PORT}/health" 30 "${STUBS_PID}" stubs
fi

# ---------------------------------------------------------------------------------------------
# One arm: start the services, warm up, measure, account for the documents, stop the services.

RESULTS="${OUT}/results.tsv"
printf 'scenario\ttracing\tround\treq_s\tp50_ms\tp99_ms\trequests\terrors\trss_idle_kb\trss_max_kb\trss_end_kb\tload1\tapi_requests\tbff_docs\tproduced\tdelivered\tsdk_drops\tcollector_rejects\tunaccounted\tpending\tbff_cpu_us_per_req\txray_local_cpu_us_per_req\tqueued\tsent\tsend_errors\tqueue_full\ttoo_large\tsdk_unaccounted\tlost_after_sending\tkernel_drops\n' >"${RESULTS}"

# to_ms VALUE: wrk's 812.00us / 1.25ms / 2.01s as milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n = n * 60000; else if (v ~ /s$/) n = n * 1000
        printf "%.2f", n }'
}

# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks (/proc/PID/stat).
cpu_ticks() {
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
CLK_TCK="$(getconf CLK_TCK)"

# wrk_requests FILE: total requests wrk completed.
wrk_requests() {
    awk '/requests in/ { print $1; found = 1 } END { if (!found) print 0 }' "$1"
}

# The slow daemon: reads at most RATE datagrams a second from a 64 KiB receive buffer, and keeps
# the count it read in STATS_FILE ("received N"), updated at least every 0.2 s.
cat >"${OUT}/slow_daemon.py" <<'EOF'
import os, socket, sys, time
port, rate, stats = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.bind(("127.0.0.1", port))
s.settimeout(0.2)
n, written, interval = 0, -1, 1.0 / rate
def write():
    global written
    if n != written:
        with open(stats + ".tmp", "w") as f:
            f.write(f"received {n}\n")
        os.replace(stats + ".tmp", stats)
        written = n
write()
last = time.monotonic()
while True:
    try:
        s.recv(65536)
        n += 1
        time.sleep(interval)
    except socket.timeout:
        pass
    if time.monotonic() - last >= 0.2:
        write()
        last = time.monotonic()
EOF

# udp_drops PORT: the kernel's drop count of the UDP socket bound to 127.0.0.1:PORT.
udp_drops() {
    awk -v want="$(printf '0100007F:%04X' "$1")" '$2 == want { print $NF; found = 1 } END { if (!found) print 0 }' /proc/net/udp
}

# xray_accepted URL: xray-local's Accepted count (from its /api/stats), or fails.
xray_accepted() {
    local f="${OUT}/.stats.json"
    curl -fsS -m 5 -o "${f}" "$1/api/stats" || fail "$1/api/stats failed"
    json_get "${f}" Intake Accepted
}

# run_arm SCENARIO ARM ROUND: ARM is on, off, stopped, slow or restart (see the top).
run_arm() {
    local scenario="$1" arm="$2" round="$3"
    local tag="${scenario}-${arm}-${round}" enabled=true
    [[ "${arm}" == off ]] && enabled=false
    local bff_port b1_port b2_port b1_url b2_url svc_pids=() svc_names=() pid name
    read -r bff_port b1_port b2_port <<<"$(free_ports 3)"
    if [[ "${scenario}" == demo ]]; then
        b1_url="http://127.0.0.1:${b1_port}"
        b2_url="http://127.0.0.1:${b2_port}"
    else
        b1_url="http://127.0.0.1:${STUB1_PORT}"
        b2_url="http://127.0.0.1:${STUB2_PORT}"
    fi
    local bff="http://127.0.0.1:${bff_port}"
    say ""
    say "==> ${scenario}, arm ${arm} (AWS_XRAY_SDK_ENABLED=${enabled}), round ${round}"

    # The daemon of this arm: its address, and where delivered documents are counted.
    local daemon_port="${XRAY_PORT}" ui="${XRAY_UI}" daemon_pid="${XRAY_PID}" slow_stats="" arm_ui_port=""
    case "${arm}" in
        stopped)
            # A port nothing listens on (UDP or TCP).
            read -r daemon_port <<<"$(free_ports 1)"
            ui=""
            daemon_pid=""
            say "    daemon address 127.0.0.1:${daemon_port}: nothing listens there"
            ;;
        slow)
            read -r daemon_port <<<"$(free_ports 1)"
            slow_stats="${OUT}/${tag}.slow-daemon.txt"
            start "${tag}.slow-daemon" "${PYTHON}" "${OUT}/slow_daemon.py" "${daemon_port}" "${SLOW_RATE}" "${slow_stats}"
            daemon_pid="${STARTED_PID}"
            local until=$((SECONDS + 10))
            until [[ -s "${slow_stats}" ]]; do
                kill -0 "${daemon_pid}" 2>/dev/null || fail "the slow daemon exited; see ${OUT}/${tag}.slow-daemon.log"
                ((SECONDS < until)) || fail "the slow daemon did not start"
                sleep 0.1
            done
            ui=""
            say "    daemon 127.0.0.1:${daemon_port}: reads ${SLOW_RATE} datagrams/s from a 64 KiB buffer"
            ;;
        restart)
            read -r daemon_port arm_ui_port <<<"$(free_ports 2)"
            ui="http://127.0.0.1:${arm_ui_port}"
            start "${tag}.xray-local" "${BIN}/xray-local" --udp "127.0.0.1:${daemon_port}" --tcp "127.0.0.1:${daemon_port}" \
                --ui "127.0.0.1:${arm_ui_port}" --rules "${COLLECTOR_RULES}" --settle-secs 5
            daemon_pid="${STARTED_PID}"
            wait_http "${ui}/api/stats" 30 "${daemon_pid}" "${tag}.xray-local"
            say "    xray-local of its own on 127.0.0.1:${daemon_port}: stopped at $((DURATION / 3)) s, started again at $((2 * DURATION / 3)) s"
            ;;
    esac

    local accepted0=0 rejected0=0
    if [[ -n "${ui}" ]]; then
        curl -fsS -m 5 -o "${OUT}/${tag}.xray-before.json" "${ui}/api/stats" || fail "xray-local /api/stats failed"
        accepted0="$(json_get "${OUT}/${tag}.xray-before.json" Intake Accepted)"
        rejected0="$(json_get "${OUT}/${tag}.xray-before.json" Intake RejectedTotal)"
    fi

    local common=(env BIND_ADDRESS=127.0.0.1 "AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:${daemon_port}"
        "AWS_XRAY_SAMPLING_RULES=${SDK_RULES}" "AWS_XRAY_SDK_ENABLED=${enabled}"
        AWS_REGION=us-east-1 TABLE_NAME=xray-demo "DYNAMODB_ENDPOINT=http://127.0.0.1:${MOTO_PORT:-8000}"
        "BACKEND1_URL=${b1_url}" "BACKEND2_URL=${b2_url}" "RUST_LOG=${LOADTEST_RUST_LOG:-warn}")
    if [[ "${scenario}" == demo ]]; then
        start "${tag}.backend1" "${common[@]}" "PORT=${b1_port}" "${BIN}/backend1"
        svc_pids+=("${STARTED_PID}") svc_names+=(backend1)
        start "${tag}.backend2" "${common[@]}" "PORT=${b2_port}" "${BIN}/backend2"
        svc_pids+=("${STARTED_PID}") svc_names+=(backend2)
    fi
    start "${tag}.bff" "${common[@]}" "PORT=${bff_port}" "${BIN}/bff"
    local bff_pid="${STARTED_PID}"
    svc_pids+=("${bff_pid}") svc_names+=(bff)
    local svc_urls=()
    for name in "${svc_names[@]}"; do
        case "${name}" in
            backend1) svc_urls+=("${b1_url}") ;;
            backend2) svc_urls+=("${b2_url}") ;;
            bff) svc_urls+=("${bff}") ;;
        esac
    done
    local i
    for i in "${!svc_names[@]}"; do
        wait_http "${svc_urls[i]}/health" 30 "${svc_pids[i]}" "${tag}.${svc_names[i]}"
    done

    # Each recorder must be enabled exactly when tracing is on; one request must work.
    for i in "${!svc_names[@]}"; do
        [[ "$(curl -fsS -m 5 "${svc_urls[i]}/debug/xray-stats")" == *"\"enabled\":${enabled}"* ]] \
            || fail "${svc_names[i]}: /debug/xray-stats does not say enabled=${enabled}"
    done
    curl -fsS -m 10 -o /dev/null "${bff}/api/now" || fail "GET ${bff}/api/now failed; see ${OUT}/${tag}.*.log"

    local rss_idle
    rss_idle="$(awk '/^VmRSS:/ { print $2 }' "/proc/${bff_pid}/status")"
    local wrk_limit=$((DURATION + WARMUP + 60))
    if ((WARMUP > 0)); then
        timeout "${wrk_limit}" wrk -t"${THREADS}" -c"${CONNECTIONS}" -d"${WARMUP}s" --timeout 10s \
            "${bff}/api/now" >"${OUT}/${tag}.warmup.txt" 2>&1 || fail "wrk (warm-up) failed; see ${OUT}/${tag}.warmup.txt"
    fi

    # RSS of the BFF every second while wrk runs, and the 1-minute load average at the end.
    local rss_csv="${OUT}/${tag}.bff-rss.csv"
    printf 'second,vmrss_kb\n' >"${rss_csv}"
    (
        t=0
        while kill -0 "${bff_pid}" 2>/dev/null; do
            printf '%s,%s\n' "${t}" "$(awk '/^VmRSS:/ { print $2 }' "/proc/${bff_pid}/status" 2>/dev/null)" >>"${rss_csv}"
            sleep 1
            t=$((t + 1))
        done
    ) &
    local sampler=$!
    PIDS+=("${sampler}")
    say "    wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}s --latency ${bff}/api/now"
    local bff_cpu0 xray_cpu0=0
    bff_cpu0="$(cpu_ticks "${bff_pid}")"
    [[ -n "${daemon_pid}" ]] && xray_cpu0="$(cpu_ticks "${daemon_pid}")"
    timeout "${wrk_limit}" wrk -t"${THREADS}" -c"${CONNECTIONS}" -d"${DURATION}s" --timeout 10s --latency \
        "${bff}/api/now" >"${OUT}/${tag}.wrk.txt" 2>&1 &
    local wrk_pid=$!
    PIDS+=("${wrk_pid}")
    # The restart arm: the daemon is away for the middle third of the measurement. Its first
    # life's count is read just before it is stopped.
    local accepted_first_life=0 xray_cpu_first_life=0
    if [[ "${arm}" == restart ]]; then
        sleep "$((DURATION / 3))"
        accepted_first_life=$(($(xray_accepted "${ui}") - accepted0))
        xray_cpu_first_life=$(($(cpu_ticks "${daemon_pid}") - xray_cpu0))
        stop "${daemon_pid}"
        say "    xray-local stopped (it had accepted ${accepted_first_life} documents)"
        sleep "$((2 * DURATION / 3 - DURATION / 3))"
        start "${tag}.xray-local-2" "${BIN}/xray-local" --udp "127.0.0.1:${daemon_port}" --tcp "127.0.0.1:${daemon_port}" \
            --ui "127.0.0.1:${arm_ui_port}" --rules "${COLLECTOR_RULES}" --settle-secs 5
        daemon_pid="${STARTED_PID}"
        xray_cpu0="$(cpu_ticks "${daemon_pid}")"
        wait_http "${ui}/api/stats" 30 "${daemon_pid}" "${tag}.xray-local-2"
        say "    xray-local started again"
        accepted0=0
        rejected0=0
    fi
    wait "${wrk_pid}" || fail "wrk failed; see ${OUT}/${tag}.wrk.txt"
    local keep=() p
    for p in "${PIDS[@]}"; do
        [[ "${p}" == "${wrk_pid}" ]] || keep+=("${p}")
    done
    PIDS=("${keep[@]}")
    local bff_cpu1 xray_cpu1=0
    bff_cpu1="$(cpu_ticks "${bff_pid}")"
    [[ -n "${daemon_pid}" ]] && xray_cpu1=$(($(cpu_ticks "${daemon_pid}") + xray_cpu_first_life))
    stop "${sampler}"
    local load1
    load1="$(cut -d' ' -f1 /proc/loadavg)"

    # Let the recorders drain, then read their counters, then let the daemon's count settle.
    local deadline=$((SECONDS + 15)) pending=0
    while :; do
        pending=0
        for i in "${!svc_names[@]}"; do
            curl -fsS -m 5 -o "${OUT}/${tag}.${svc_names[i]}-xray-stats.json" "${svc_urls[i]}/debug/xray-stats" \
                || fail "GET ${svc_urls[i]}/debug/xray-stats failed"
            pending=$((pending + $(json_get "${OUT}/${tag}.${svc_names[i]}-xray-stats.json" pending)))
        done
        ((pending == 0 || SECONDS >= deadline)) && break
        sleep 0.5
    done
    local accepted1=0 rejected1=0 kernel_drops=0 previous=-2
    deadline=$((SECONDS + 15))
    if [[ -n "${ui}" ]]; then
        accepted1=-1
        while ((accepted1 != previous && SECONDS < deadline)); do
            previous="${accepted1}"
            sleep 1
            curl -fsS -m 5 -o "${OUT}/${tag}.xray-after.json" "${ui}/api/stats" || fail "xray-local /api/stats failed"
            accepted1="$(json_get "${OUT}/${tag}.xray-after.json" Intake Accepted)"
        done
        rejected1="$(json_get "${OUT}/${tag}.xray-after.json" Intake RejectedTotal)"
    elif [[ -n "${slow_stats}" ]]; then
        # Until the slow daemon has read what its buffer still held.
        accepted1=-1
        while ((accepted1 != previous && SECONDS < deadline)); do
            previous="${accepted1}"
            sleep 1
            accepted1="$(awk '{ print $2 }' "${slow_stats}")"
        done
        kernel_drops="$(udp_drops "${daemon_port}")"
    fi

    for pid in "${svc_pids[@]}"; do
        stop "${pid}"
    done
    if [[ "${arm}" == slow || "${arm}" == restart ]]; then
        stop "${daemon_pid}"
    fi

    # SDK side, over the three (or one) recorders: produced = queued + dropped_queue_full;
    # queued = sent + send_errors + dropped_too_large + pending (one datagram per document).
    local produced=0 sdk_drops=0 bff_docs=0 queued=0 sent=0 send_errors=0 queue_full=0 too_large=0 f q d
    for name in "${svc_names[@]}"; do
        f="${OUT}/${tag}.${name}-xray-stats.json"
        q="$(json_get "${f}" queued)"
        d="$(json_get "${f}" dropped_queue_full)"
        produced=$((produced + q + d))
        queued=$((queued + q))
        queue_full=$((queue_full + d))
        sent=$((sent + $(json_get "${f}" sent)))
        send_errors=$((send_errors + $(json_get "${f}" send_errors)))
        too_large=$((too_large + $(json_get "${f}" dropped_too_large)))
        sdk_drops=$((sdk_drops + d + $(json_get "${f}" dropped_too_large) + $(json_get "${f}" send_errors)))
        [[ "${name}" == bff ]] && bff_docs=$((q + d))
    done
    local sdk_unaccounted=$((queued - sent - send_errors - too_large - pending))
    local delivered=$((accepted1 - accepted0 + accepted_first_life)) rejects=$((rejected1 - rejected0))
    local lost_after_sending=$((sent - delivered - rejects))
    local unaccounted=$((produced - delivered - sdk_drops - rejects))
    local api_requests=$((1 + $(wrk_requests "${OUT}/${tag}.wrk.txt")))
    if ((WARMUP > 0)); then
        api_requests=$((api_requests + $(wrk_requests "${OUT}/${tag}.warmup.txt")))
    fi

    local w="${OUT}/${tag}.wrk.txt" req_s p50 p99 requests errors rss_max rss_end
    req_s="$(awk '/^Requests\/sec:/ { print $2 }' "${w}")"
    p50="$(to_ms "$(awk '$1 == "50%" { print $2 }' "${w}")")"
    p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' "${w}")")"
    requests="$(wrk_requests "${w}")"
    errors="$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "${w}")"
    # CPU time per completed request during the measurement, in microseconds.
    local bff_cpu_us xray_cpu_us
    bff_cpu_us=$(((bff_cpu1 - bff_cpu0) * 1000000 / CLK_TCK / (requests > 0 ? requests : 1)))
    xray_cpu_us=$(((xray_cpu1 - xray_cpu0) * 1000000 / CLK_TCK / (requests > 0 ? requests : 1)))
    rss_max="$(awk -F, 'NR > 1 && $2 > m { m = $2 } END { print m + 0 }' "${rss_csv}")"
    rss_end="$(awk -F, 'NR > 1 && $2 != "" { v = $2 } END { print v + 0 }' "${rss_csv}")"
    printf '%s\t' "${scenario}" "${arm}" "${round}" "${req_s:-0}" "${p50}" "${p99}" "${requests}" "${errors}" \
        "${rss_idle:-0}" "${rss_max}" "${rss_end}" "${load1}" "${api_requests}" "${bff_docs}" \
        "${produced}" "${delivered}" "${sdk_drops}" "${rejects}" "${unaccounted}" "${pending}" "${bff_cpu_us}" "${xray_cpu_us}" \
        "${queued}" "${sent}" "${send_errors}" "${queue_full}" "${too_large}" "${sdk_unaccounted}" "${lost_after_sending}" >>"${RESULTS}"
    printf '%s\n' "${kernel_drops}" >>"${RESULTS}"
    say "    ${req_s:-?} req/s, p50 ${p50} ms, p99 ${p99} ms, ${errors} errors"
    if [[ "${arm}" != off ]]; then
        say "    SDK: queued ${queued} = sent ${sent} + send errors ${send_errors} + too large ${too_large} + pending ${pending} (off by ${sdk_unaccounted}); queue full ${queue_full}"
        local note=""
        [[ "${arm}" == slow ]] && note=" (kernel drops at the receiver: ${kernel_drops})"
        say "    daemon: delivered ${delivered}, rejected ${rejects}, lost after sending ${lost_after_sending}${note}"
    fi
}

say "==> ${DURATION} s per arm (warm-up ${WARMUP} s), wrk -t${THREADS} -c${CONNECTIONS}, ${ROUNDS} round(s); results in ${OUT}"
read -r -a ARM_LIST <<<"${ARMS}"
for ((round = 1; round <= ROUNDS; round++)); do
    for scenario in ${SCENARIOS}; do
        # Odd rounds run the arms in order, even rounds in reverse, so drift favours none.
        if ((round % 2 == 1)); then
            for ((i = 0; i < ${#ARM_LIST[@]}; i++)); do
                run_arm "${scenario}" "${ARM_LIST[i]}" "${round}"
            done
        else
            for ((i = ${#ARM_LIST[@]} - 1; i >= 0; i--)); do
                run_arm "${scenario}" "${ARM_LIST[i]}" "${round}"
            done
        fi
    done
done

# ---------------------------------------------------------------------------------------------
# Summary

say ""
say "==> Summary ($(nproc) CPUs, wrk -t${THREADS} -c${CONNECTIONS}, ${DURATION} s per arm; load = 1-min load average at the end of the arm)"
"${PYTHON}" - "${RESULTS}" "${OUT}" <<'EOF' | tee "${OUT}/summary.txt"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
out = sys.argv[2]
mb = lambda kb: f"{int(kb) / 1024:.1f}"
print("| scenario | tracing | round | req/s | p50 ms | p99 ms | errors | BFF CPU µs/req | xray-local CPU µs/req | BFF RSS idle / max / end MB | load | /api/now sent | BFF docs | produced | delivered | counted drops | unaccounted |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    drops = int(r["sdk_drops"]) + int(r["collector_rejects"])
    print(f"| {r['scenario']} | {r['tracing']} | {r['round']} | {float(r['req_s']):.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {r['bff_cpu_us_per_req']} | {r['xray_local_cpu_us_per_req']} | "
          f"{mb(r['rss_idle_kb'])} / {mb(r['rss_max_kb'])} / {mb(r['rss_end_kb'])} | {r['load1']} | {r['api_requests']} | {r['bff_docs']} | "
          f"{r['produced']} | {r['delivered']} | {drops} | {r['unaccounted']} |")
print()
for scenario in dict.fromkeys(r["scenario"] for r in rows):
    on = [float(r["req_s"]) for r in rows if r["scenario"] == scenario and r["tracing"] == "on"]
    off = [float(r["req_s"]) for r in rows if r["scenario"] == scenario and r["tracing"] == "off"]
    if on and off and sum(off) > 0:
        ratio = (sum(on) / len(on)) / (sum(off) / len(off))
        print(f"{scenario}: throughput with tracing / without = {ratio:.3f} (tracing costs {100 * (1 - ratio):.1f} % of throughput)")
        cpu = lambda t: sum(int(r["bff_cpu_us_per_req"]) for r in rows if r["scenario"] == scenario and r["tracing"] == t) / len(on if t == "on" else off)
        if cpu("off") > 0:
            print(f"{scenario}: BFF CPU per request with tracing / without = {cpu('on') / cpu('off'):.3f} ({cpu('on'):.0f} vs {cpu('off'):.0f} µs)")
faults = [r for r in rows if r["tracing"] not in ("on", "off")]
if faults:
    print()
    print("Faults around the daemon, next to the untraced arm (off) of the same scenario and round:")
    print("| scenario | arm | round | req/s (off) | p50 ms (off) | p99 ms (off) | errors | queued | sent | send errors | too large | pending | SDK unaccounted | queue full | delivered | lost after sending | kernel drops |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["tracing"] == "off":
            continue
        off = next((o for o in rows if o["scenario"] == r["scenario"] and o["round"] == r["round"] and o["tracing"] == "off"), None)
        base = lambda k, fmt=str: f" ({fmt(off[k])})" if off else ""
        print(f"| {r['scenario']} | {r['tracing']} | {r['round']} | {float(r['req_s']):.0f}{base('req_s', lambda v: f'{float(v):.0f}')} | "
              f"{r['p50_ms']}{base('p50_ms')} | {r['p99_ms']}{base('p99_ms')} | {r['errors']} | {r['queued']} | {r['sent']} | {r['send_errors']} | "
              f"{r['too_large']} | {r['pending']} | {r['sdk_unaccounted']} | {r['queue_full']} | {r['delivered']} | {r['lost_after_sending']} | {r['kernel_drops']} |")
print()
print("BFF RSS over time (MB, every 10 s):")
for r in rows:
    tag = f"{r['scenario']}-{r['tracing']}-{r['round']}"
    series = [line.split(",") for line in open(f"{out}/{tag}.bff-rss.csv").read().split()[1:]]
    points = [mb(kb) for s, kb in series if kb and int(s) % 10 == 0]
    print(f"  {tag:<14} " + " ".join(points))
EOF
say ""
say "Raw results: ${RESULTS} (wrk output, RSS series, stats and logs beside it)"
