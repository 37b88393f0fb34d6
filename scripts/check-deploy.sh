#!/usr/bin/env bash
# Checks the deployment: cfn-lint on every CloudFormation template and on the Lambda SAM
# template (installed into .venv, runs offline), scripts/check-app-drift.py (app.yaml against
# the code of examples/reference: environment variables, ports, health check path, DynamoDB
# actions and key, /debug/ blocked; PyYAML comes with cfn-lint) and shellcheck on every shell
# script (Debian package, installed when root).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "${venv}/bin/cfn-lint" ]; then
    echo "check-deploy: installing cfn-lint into ${venv}" >&2
    [ -x "${venv}/bin/python" ] || python3 -m venv "${venv}"
    if ! "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check cfn-lint; then
        echo "check-deploy: error: could not install cfn-lint from PyPI" >&2
        exit 1
    fi
fi
"${venv}/bin/cfn-lint" deploy/cloudformation/*.yaml deploy/lambda/*.yaml
echo "cfn-lint: $(find deploy/cloudformation deploy/lambda -name '*.yaml' | wc -l) template(s) clean"
"${venv}/bin/python" scripts/check-app-drift.py

if ! command -v shellcheck >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "check-deploy: installing shellcheck" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
    else
        echo "check-deploy: error: shellcheck is not installed" >&2
        exit 1
    fi
fi
mapfile -t scripts < <(find scripts deploy .ci -type f \( -name '*.sh' -o -name run \) | sort)
shellcheck "${scripts[@]}"
echo "shellcheck: ${#scripts[@]} script(s) clean"
