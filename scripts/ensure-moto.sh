#!/usr/bin/env bash
# Makes sure moto's server (a local DynamoDB stand-in) is installed in the repository's .venv,
# installing moto[server] with pip when it is missing, and prints the path of moto_server.
# Exits non-zero with a clear message when it cannot be installed.
#
# Usage: scripts/ensure-moto.sh          (VENV=path overrides .venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-${ROOT}/.venv}"
MOTO="${VENV}/bin/moto_server"

fail() {
    printf 'ensure-moto: %s\n' "$*" >&2
    exit 1
}

if [[ -x "${MOTO}" ]]; then
    printf '%s\n' "${MOTO}"
    exit 0
fi

PYTHON="$(command -v python3 || true)"
[[ -n "${PYTHON}" ]] || fail "python3 is required to run moto (Debian/Ubuntu: apt-get install -y python3 python3-venv)"

if [[ ! -x "${VENV}/bin/python" ]]; then
    printf 'Creating %s ...\n' "${VENV}" >&2
    "${PYTHON}" -m venv "${VENV}" >&2 \
        || fail "could not create ${VENV} (Debian/Ubuntu: apt-get install -y python3-venv)"
fi

printf 'Installing moto[server] into %s (one time) ...\n' "${VENV}" >&2
"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5' >&2 \
    || fail "pip could not install moto[server] into ${VENV} (no network access to PyPI? try: ${VENV}/bin/pip install 'moto[server]')"

[[ -x "${MOTO}" ]] || fail "moto[server] was installed but ${MOTO} is missing"
printf '%s\n' "${MOTO}"
