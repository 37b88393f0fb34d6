#!/usr/bin/env bash
# The reference architecture on this machine, in one command:
#   builds the services, starts xray-local (the X-Ray daemon address 127.0.0.1:2000, UI on
#   http://127.0.0.1:2080/), moto as DynamoDB (installed into .venv when missing), creates the
#   table, starts the BFF and the two backends as separate processes on 127.0.0.1, sends a
#   burst of requests, prints what was traced, and runs until Ctrl-C (then stops everything).
#
# Usage: scripts/demo.sh
#   DEMO_EXIT_AFTER_SUMMARY=1   exit after the summary (CI)
#   DEMO_REQUESTS=100           how many requests to send (default 40)
#   DYNAMODB_ENDPOINT=http://127.0.0.1:8000   use a running DynamoDB Local instead of moto
#   More settings (ports, log directory): examples/reference/src/demo.rs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

fail() {
    printf 'demo: %s\n' "$*" >&2
    exit 1
}

command -v cargo >/dev/null 2>&1 || fail "cargo is required (install Rust from https://rustup.rs)"

if [[ -z "${DYNAMODB_ENDPOINT:-}" ]]; then
    printf '==> Checking moto (local DynamoDB)\n'
    DEMO_MOTO_SERVER="$("${ROOT}/scripts/ensure-moto.sh")" \
        || fail "moto is needed as the local DynamoDB (or set DYNAMODB_ENDPOINT to a running one)"
    export DEMO_MOTO_SERVER
fi

# The first build compiles every dependency (axum, reqwest, the AWS SDK, ...): say so, and
# let cargo show its progress.
TARGET_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}"
if [[ -x "${TARGET_DIR}/debug/demo" && -x "${TARGET_DIR}/debug/bff" ]]; then
    printf '==> Building (cargo build -p xray-demo --bins)\n'
else
    printf '==> First build (cargo build -p xray-demo --bins): a few minutes, about 3 on a 2-core machine; later runs take seconds\n'
fi
cargo build -p xray-demo --bins || fail "the build failed (see the errors above)"

# xray-local answers the X-Ray API on its UI port: a command to try while the demo runs.
UI_ENDPOINT="http://127.0.0.1:${DEMO_XRAY_UI_PORT:-2080}"
printf '==> While the demo runs, the AWS CLI works against xray-local (more in README.md), e.g.:\n'
printf '    export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1\n'
# The command is printed as it is, for the user's shell to expand.
# shellcheck disable=SC2016
printf '    aws xray get-trace-summaries --start-time $(( $(date +%%s) - 600 )) --end-time $(date +%%s) \\\n'
printf '        --filter-expression %s --endpoint-url %s\n' "'service(\"xray-demo-bff\") { fault }'" "${UI_ENDPOINT}"

# cargo run replaces itself with the demo, which receives Ctrl-C and stops what it started.
exec cargo run --quiet -p xray-demo --bin demo
