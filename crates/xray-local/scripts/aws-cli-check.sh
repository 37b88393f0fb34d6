#!/usr/bin/env bash
# Drives a freshly started xray-local with the AWS CLI (botocore), the way the README shows:
# put-trace-segments, get-trace-summaries with a filter expression, batch-get-traces,
# get-service-graph, get-trace-graph, get-time-series-service-statistics and the sampling-rule
# commands, plus the errors a malformed filter and a refused delete give. Every step is bounded
# in time; xray-local is stopped on exit.
#
# Usage: crates/xray-local/scripts/aws-cli-check.sh
#   Uses `aws` from PATH, else installs awscli into the repository's .venv (VENV=path overrides).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "${ROOT}"
VENV="${VENV:-${ROOT}/.venv}"

fail() {
    printf 'aws-cli-check: %s\n' "$*" >&2
    exit 1
}

AWS="$(command -v aws || true)"
if [[ -z "${AWS}" ]]; then
    AWS="${VENV}/bin/aws"
    if [[ ! -x "${AWS}" ]]; then
        PYTHON="$(command -v python3 || true)"
        [[ -n "${PYTHON}" ]] || fail "python3 is required to install the AWS CLI"
        [[ -x "${VENV}/bin/python" ]] || "${PYTHON}" -m venv "${VENV}" >&2 \
            || fail "could not create ${VENV}"
        printf 'Installing awscli into %s (one time) ...\n' "${VENV}" >&2
        "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check awscli >&2 \
            || fail "pip could not install awscli into ${VENV}"
    fi
fi

cargo build --quiet -p xray-local || fail "the build failed"
LOG="$(mktemp)"
"${ROOT}/target/debug/xray-local" --udp 127.0.0.1:0 --tcp 127.0.0.1:0 --ui 127.0.0.1:0 >"${LOG}" 2>&1 &
PID=$!
trap 'kill "${PID}" 2>/dev/null || true; rm -f "${LOG}"' EXIT
for _ in $(seq 50); do
    grep -q 'X-Ray API:' "${LOG}" && break
    sleep 0.1
done
ENDPOINT="$(sed -n 's/^  X-Ray API: *\(http:[^ ]*\).*/\1/p' "${LOG}")"
[[ -n "${ENDPOINT}" ]] || fail "xray-local did not start: $(cat "${LOG}")"
DAEMON="http://$(sed -n 's/^  sampling API (TCP): *//p' "${LOG}")"

export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1
export AWS_PAGER="" AWS_MAX_ATTEMPTS=1
xray() { timeout 30 "${AWS}" xray "$@" --endpoint-url "${ENDPOINT}" --cli-read-timeout 10 --cli-connect-timeout 5; }
expect() { # expect WHAT WANT GOT
    [[ "$2" == "$3" ]] || fail "$1: expected [$2], got [$3]"
    printf 'ok  %s\n' "$1"
}

NOW="$(date +%s)"
TRACE="$(printf '1-%08x-%024x' "${NOW}" "$$")"
CALL=00000000000000c1
xray put-trace-segments --trace-segment-documents \
    "{\"trace_id\":\"${TRACE}\",\"id\":\"00000000000000a1\",\"name\":\"xray-demo-bff\",\"start_time\":${NOW},\"end_time\":$((NOW + 1)),\"http\":{\"request\":{\"method\":\"GET\",\"url\":\"http://127.0.0.1:3000/api/now\"},\"response\":{\"status\":200}},\"subsegments\":[{\"id\":\"${CALL}\",\"name\":\"backend\",\"namespace\":\"remote\",\"start_time\":${NOW},\"end_time\":$((NOW + 1)),\"fault\":true}]}" \
    "{\"trace_id\":\"${TRACE}\",\"id\":\"00000000000000b1\",\"name\":\"backend\",\"parent_id\":\"${CALL}\",\"start_time\":${NOW},\"end_time\":$((NOW + 1)),\"fault\":true}" \
    >/dev/null
WINDOW=(--start-time $((NOW - 600)) --end-time $((NOW + 60)))

expect "get-trace-summaries with a service filter" "${TRACE}" \
    "$(xray get-trace-summaries "${WINDOW[@]}" --filter-expression 'service("backend") { fault }' \
        --query 'TraceSummaries[].Id' --output text)"
expect "the root answered 200: not a fault" "" \
    "$(xray get-trace-summaries "${WINDOW[@]}" --filter-expression 'fault' --query 'TraceSummaries[].Id' --output text)"
expect "batch-get-traces" "2" \
    "$(xray batch-get-traces --trace-ids "${TRACE}" --query 'length(Traces[0].Segments)' --output text)"
expect "get-service-graph" "backend client xray-demo-bff" \
    "$(xray get-service-graph "${WINDOW[@]}" --query 'sort(Services[].Name)' --output text | tr '\t' ' ')"
expect "get-trace-graph" "3" \
    "$(xray get-trace-graph --trace-ids "${TRACE}" --query 'length(Services)' --output text)"
expect "get-time-series-service-statistics" "1" \
    "$(xray get-time-series-service-statistics "${WINDOW[@]}" --entity-selector-expression 'service("backend")' \
        --query 'sum(TimeSeriesServiceStatistics[].ServiceSummaryStatistics.FaultStatistics.TotalCount)' --output text)"
expect "get-sampling-rules" "health Default" \
    "$(xray get-sampling-rules --query 'SamplingRuleRecords[].SamplingRule.RuleName' --output text | tr '\t' ' ')"
expect "create-sampling-rule" "no-pings" \
    "$(xray create-sampling-rule --sampling-rule '{"RuleName":"no-pings","ResourceARN":"*","Priority":100,"FixedRate":0,"ReservoirSize":0,"ServiceName":"*","ServiceType":"*","Host":"*","HTTPMethod":"GET","URLPath":"/ping","Version":1}' \
        --query 'SamplingRuleRecord.SamplingRule.RuleName' --output text)"
expect "update-sampling-rule" "0.25" \
    "$(xray update-sampling-rule --sampling-rule-update '{"RuleName":"no-pings","FixedRate":0.25}' \
        --query 'SamplingRuleRecord.SamplingRule.FixedRate' --output text)"
expect "the daemon's sampling port serves it too" "health no-pings Default" \
    "$(timeout 30 "${AWS}" xray get-sampling-rules --endpoint-url "${DAEMON}" \
        --query 'SamplingRuleRecords[].SamplingRule.RuleName' --output text | tr '\t' ' ')"
expect "delete-sampling-rule" "no-pings" \
    "$(xray delete-sampling-rule --rule-name no-pings --query 'SamplingRuleRecord.SamplingRule.RuleName' --output text)"

ERR="$(xray get-trace-summaries "${WINDOW[@]}" --filter-expression 'service("x") {' 2>&1 >/dev/null || true)"
[[ "${ERR}" == *"(InvalidRequestException)"*"position 15"* ]] || fail "a malformed filter: ${ERR}"
printf 'ok  %s\n' "a malformed filter is an InvalidRequestException naming the position"
ERR="$(xray delete-sampling-rule --rule-name Default 2>&1 >/dev/null || true)"
[[ "${ERR}" == *"(InvalidRequestException)"* ]] || fail "deleting Default: ${ERR}"
printf 'ok  %s\n' "the Default rule cannot be deleted"
printf 'aws-cli-check: all passed against %s\n' "${ENDPOINT}"
