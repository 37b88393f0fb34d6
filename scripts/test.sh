#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need on a fresh machine:
# moto's DynamoDB server (into .venv, started for the duration of the tests), the OpenTelemetry
# Python SDK (into .venv, for the cross-language OTLP test) and, when
# running as root on Debian, Chromium for the viewer's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium for the browser test..."
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
            echo "error: could not install chromium (needed by the viewer's browser test)" >&2
            exit 1
        fi
    fi
fi
if command -v chromium >/dev/null 2>&1; then
    export XRAY_BROWSER_TESTS=1
fi

# Bounded fuzzing of the parsers runs as part of the tests: a fixed number of seeded inputs
# per target, the same on every machine. XRAY_FUZZ_SECS=<seconds> runs each target for that
# long instead (longer runs); XRAY_FUZZ_RUNS=<n> changes the count.

# The cross-language OTLP test (tests/otlp_python.rs) needs the OpenTelemetry Python SDK and its
# OTLP/HTTP exporter in .venv; installed here, in bounded time, rather than inside the test.
# When PyPI cannot be reached the test skips itself with a message, except in CI (CI set).
otel=0
scripts/ensure-otel-python.sh >/dev/null || otel=$?
if [ "${otel}" -eq 3 ] && [ -z "${CI:-}" ]; then
    echo "warning: PyPI is unreachable; the cross-language OTLP test will be skipped" >&2
elif [ "${otel}" -ne 0 ]; then
    echo "error: scripts/ensure-otel-python.sh failed (exit ${otel})" >&2
    exit 1
fi

exec scripts/with-moto.sh cargo test --workspace --all-features "$@"
