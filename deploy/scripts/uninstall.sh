#!/usr/bin/env bash
# Deletes everything install.sh created: the app, network and ECR stacks (images included,
# the DynamoDB table and the log groups too). Asks first unless given --yes.
# Usage: deploy/scripts/uninstall.sh [--yes]    (STACK_NAME and AWS_REGION as for install.sh)
set -euo pipefail

# shellcheck source=deploy/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need aws "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
resolve_region

if [[ "${1:-}" != "--yes" ]]; then
    printf 'Delete stacks %s, %s and %s in %s? [y/N] ' "${APP_STACK}" "${NETWORK_STACK}" "${ECR_STACK}" "${AWS_REGION}"
    read -r answer || answer=""
    [[ "${answer}" == "y" || "${answer}" == "Y" ]] || die "aborted"
fi

# The app stack uses the network; the images are used by the app: delete in that order.
for stack in "${APP_STACK}" "${NETWORK_STACK}" "${ECR_STACK}"; do
    if stack_exists "${stack}"; then
        step "Deleting ${stack}"
        aws cloudformation delete-stack --region "${AWS_REGION}" --stack-name "${stack}"
        aws cloudformation wait stack-delete-complete --region "${AWS_REGION}" --stack-name "${stack}" \
            || die "deleting ${stack} failed: see its events with: aws cloudformation describe-stack-events --stack-name ${stack}"
    else
        printf '%s: not found, skipped\n' "${stack}"
    fi
done
step "Done: nothing of the demo is left in ${AWS_REGION}"
