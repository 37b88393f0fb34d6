#!/usr/bin/env bash
# Prints the URL of the deployed demo and where to look at its traces.
# Usage: deploy/scripts/url.sh    (STACK_NAME and AWS_REGION as for install.sh)
set -euo pipefail

# shellcheck source=deploy/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need aws "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
resolve_region
stack_exists "${APP_STACK}" || die "stack ${APP_STACK} not found in ${AWS_REGION}: run deploy/scripts/install.sh"
URL="$(stack_output "${APP_STACK}" Url)"
[[ -n "${URL}" && "${URL}" != "None" ]] || die "stack ${APP_STACK} has no Url output yet (is it still being created?)"
printf 'Demo page:     %s\n' "${URL}"
printf 'Traced API:    %sapi/now\n' "${URL}"
printf 'Service map:   %s\n' "$(stack_output "${APP_STACK}" ServiceMapUrl)"
printf 'Logs:          %s\n' "$(stack_output "${APP_STACK}" LogGroups)"
