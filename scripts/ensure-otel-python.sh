#!/usr/bin/env bash
# Makes sure the OpenTelemetry Python SDK and its OTLP/HTTP exporter are installed in the
# repository's .venv (the one moto uses), installing them with pip when they are missing, and
# prints the path of that venv's python. Used by the cross-language test (tests/otlp_python.rs).
#
# Usage: scripts/ensure-otel-python.sh        (VENV=path overrides .venv)
#
# Exit status: 0 ready; 3 the package index could not be reached (the test may then be skipped,
# outside CI); 1 anything else (no python3, no venv module, a failed install).
# Time is bounded: OTEL_PYTHON_INSTALL_TIMEOUT seconds for the install (default 300), 30 s per
# network operation.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-${ROOT}/.venv}"
PY="${VENV}/bin/python"
TIMEOUT="${OTEL_PYTHON_INSTALL_TIMEOUT:-300}"
PACKAGES=('opentelemetry-sdk>=1.20,<2' 'opentelemetry-exporter-otlp-proto-http>=1.20,<2')
CHECK='import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.trace_exporter'

fail() {
    printf 'ensure-otel-python: %s\n' "$2" >&2
    exit "$1"
}

if [[ -x "${PY}" ]] && "${PY}" -c "${CHECK}" 2>/dev/null; then
    printf '%s\n' "${PY}"
    exit 0
fi

# One install at a time: the tests that need these packages may call this script in parallel.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/xray-ensure-otel-python.lock"
    flock -w "$((TIMEOUT + 120))" 9 || fail 1 "another install into ${VENV} did not finish in time"
    if [[ -x "${PY}" ]] && "${PY}" -c "${CHECK}" 2>/dev/null; then
        printf '%s\n' "${PY}"
        exit 0
    fi
fi

PYTHON="$(command -v python3 || true)"
[[ -n "${PYTHON}" ]] || fail 1 "python3 is required (Debian/Ubuntu: apt-get install -y python3 python3-venv)"

if [[ ! -x "${PY}" ]]; then
    printf 'Creating %s ...\n' "${VENV}" >&2
    "${PYTHON}" -m venv "${VENV}" >&2 \
        || fail 1 "could not create ${VENV} (Debian/Ubuntu: apt-get install -y python3-venv)"
fi

pip=("${PY}" -m pip --disable-pip-version-check --timeout 30 --retries 1)
probe="$(mktemp -d)"
trap 'rm -rf "${probe}"' EXIT
# Reachability first, so that "no network" is told apart from a broken install.
if ! timeout 60 "${pip[@]}" download --quiet --no-deps --dest "${probe}" 'opentelemetry-api>=1.20,<2' >&2; then
    fail 3 "the package index could not be reached: cannot install ${PACKAGES[*]}"
fi
printf 'Installing %s into %s (one time) ...\n' "${PACKAGES[*]}" "${VENV}" >&2
timeout "${TIMEOUT}" "${pip[@]}" install --quiet "${PACKAGES[@]}" >&2 \
    || fail 1 "pip could not install ${PACKAGES[*]} into ${VENV} within ${TIMEOUT} s"
"${PY}" -c "${CHECK}" || fail 1 "the OpenTelemetry packages were installed but do not import"
printf '%s\n' "${PY}"
