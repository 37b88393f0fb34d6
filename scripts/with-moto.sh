#!/usr/bin/env bash
# Runs a command with a local moto server (an AWS API emulator) standing in for DynamoDB.
#
#   scripts/with-moto.sh CMD [ARGS...]
#
# Installs `moto[server]` from PyPI into .venv at the repository root when it is not there yet,
# starts `moto_server` on a free port of 127.0.0.1, waits (at most MOTO_START_TIMEOUT seconds,
# default 60) until it answers, exports XRAY_TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:PORT,
# runs CMD, stops moto, and exits with CMD's exit status.
#
# Example: scripts/with-moto.sh cargo test -p xray-sdk-aws
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="${root}/.venv"
moto_spec='moto[server]>=5,<6'
python_bin="${PYTHON:-python3}"
start_timeout="${MOTO_START_TIMEOUT:-60}"

if [ ! -x "${venv}/bin/moto_server" ]; then
    echo "with-moto: installing ${moto_spec} into ${venv}" >&2
    if ! "${python_bin}" -m venv "${venv}"; then
        echo "with-moto: error: '${python_bin} -m venv ${venv}' failed (is Python 3 with venv installed?)" >&2
        exit 1
    fi
    if ! "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "${moto_spec}"; then
        echo "with-moto: error: 'pip install ${moto_spec}' failed (PyPI unreachable?)" >&2
        exit 1
    fi
    if [ ! -x "${venv}/bin/moto_server" ]; then
        echo "with-moto: error: ${venv}/bin/moto_server is missing after the install" >&2
        exit 1
    fi
fi

# A free port: bind port 0 and read what the kernel chose.
port=$("${venv}/bin/python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')

log="$(mktemp -t with-moto.XXXXXX.log)"
"${venv}/bin/moto_server" -p "${port}" -H 127.0.0.1 >"${log}" 2>&1 &
moto_pid=$!

# Invoked through the trap below (shellcheck cannot see that).
# shellcheck disable=SC2317
cleanup() {
    if kill -0 "${moto_pid}" 2>/dev/null; then
        kill "${moto_pid}" 2>/dev/null || true
        wait "${moto_pid}" 2>/dev/null || true
    fi
    rm -f "${log}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

endpoint="http://127.0.0.1:${port}"
deadline=$((SECONDS + start_timeout))
until "${venv}/bin/python" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1).read()' "${endpoint}" >/dev/null 2>&1; do
    if ! kill -0 "${moto_pid}" 2>/dev/null; then
        echo "with-moto: error: moto_server exited during startup; its output:" >&2
        cat "${log}" >&2
        exit 1
    fi
    if [ "${SECONDS}" -ge "${deadline}" ]; then
        echo "with-moto: error: moto_server did not answer on ${endpoint} within ${start_timeout} s; its output:" >&2
        cat "${log}" >&2
        exit 1
    fi
    sleep 0.2
done
echo "with-moto: moto_server (pid ${moto_pid}) listening on ${endpoint}" >&2

export XRAY_TEST_DYNAMODB_ENDPOINT="${endpoint}"
status=0
"$@" || status=$?
exit "${status}"
