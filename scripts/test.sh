#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need on a fresh machine:
# moto's DynamoDB server (into .venv, started for the duration of the tests) and, when
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

exec scripts/with-moto.sh cargo test --workspace --all-features "$@"
