# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this file
# Shared by install.sh, url.sh and uninstall.sh: settings and small helpers.
#
# Settings (environment):
#   STACK_NAME           prefix of the three CloudFormation stacks   (default: xray-demo)
#   AWS_REGION           region to deploy to (default: AWS_DEFAULT_REGION, then the CLI profile's region)
#   AWS_PROFILE          the usual AWS CLI profile selection
#   SERVICE_NAME_PREFIX  X-Ray service names, Cloud Map namespace and sampling rule names
#                        (default: derived from STACK_NAME; unique per account and region)
#   APP_PARAMETERS       more parameters of app.yaml, "Key=Value Key=Value" (e.g. DesiredCount=2)
#   NETWORK_PARAMETERS   more parameters of network.yaml (e.g. AvailabilityZoneA=us-west-1a)
#   DELETE_ROLLED_BACK   1: delete a stack whose creation failed (ROLLBACK_COMPLETE) and create it again

STACK_NAME="${STACK_NAME:-xray-demo}"
DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "${DEPLOY_DIR}/.." && pwd)"
TEMPLATES="${DEPLOY_DIR}/cloudformation"
ECR_STACK="${STACK_NAME}-ecr"
NETWORK_STACK="${STACK_NAME}-network"
APP_STACK="${STACK_NAME}-app"

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

step() {
    printf '\n==> %s\n' "$*"
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is required but was not found in PATH ($2)"
}

resolve_region() {
    if [[ -z "${AWS_REGION:-}" ]]; then
        AWS_REGION="${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}"
    fi
    [[ -n "${AWS_REGION}" ]] || die "no region: set AWS_REGION (e.g. export AWS_REGION=us-east-1)"
    export AWS_REGION
}

check_credentials() {
    aws sts get-caller-identity --query Account --output text 2>/dev/null \
        || die "the AWS CLI has no working credentials (run 'aws configure' or 'aws sso login')"
}

# stack_output STACK KEY: prints one output value of a stack (empty when absent).
stack_output() {
    aws cloudformation describe-stacks --region "${AWS_REGION}" --stack-name "$1" \
        --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text 2>/dev/null || true
}

stack_exists() {
    aws cloudformation describe-stacks --region "${AWS_REGION}" --stack-name "$1" >/dev/null 2>&1
}

# stack_status STACK: prints the stack's status (empty when it does not exist).
stack_status() {
    aws cloudformation describe-stacks --region "${AWS_REGION}" --stack-name "$1" \
        --query "Stacks[0].StackStatus" --output text 2>/dev/null || true
}

# stack_failures STACK: the latest failed resources of a stack, with their reasons.
stack_failures() {
    aws cloudformation describe-stack-events --region "${AWS_REGION}" --stack-name "$1" \
        --query "StackEvents[?ends_with(ResourceStatus, '_FAILED')].[LogicalResourceId, ResourceStatus, ResourceStatusReason]" \
        --output text 2>/dev/null | head -n 10 || true
}

# service_name_prefix NAME: NAME as a ServiceNamePrefix of app.yaml (1 to 16 of [a-z0-9-],
# a letter first, no hyphen last); a longer NAME is cut to 11 characters plus a hash of it,
# so that two long stack names do not end up with the same prefix.
service_name_prefix() {
    local name
    name="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]' \
        | sed -E 's/[^a-z0-9-]+/-/g; s/^[^a-z]+//; s/-+/-/g; s/-+$//')"
    if ((${#name} > 16)); then
        local sum
        sum="$(printf '%s' "$1" | cksum | cut -d ' ' -f 1)"
        name="$(printf '%s' "${name:0:11}" | sed -E 's/-+$//')-$(printf '%04x' $((sum % 65536)))"
    fi
    printf '%s\n' "${name}"
}

valid_service_name_prefix() {
    [[ "$1" =~ ^[a-z]([a-z0-9-]{0,14}[a-z0-9])?$ ]]
}

# ensure_updatable STACK: a stack whose creation failed sits in ROLLBACK_COMPLETE and cannot be
# updated; stop with the delete command, or delete it when DELETE_ROLLED_BACK=1.
ensure_updatable() {
    local stack="$1" status
    status="$(stack_status "${stack}")"
    [[ "${status}" == "ROLLBACK_COMPLETE" ]] || return 0
    if [[ "${DELETE_ROLLED_BACK:-}" == "1" ]]; then
        printf 'Stack %s is in ROLLBACK_COMPLETE (its creation failed): deleting it (DELETE_ROLLED_BACK=1)\n' "${stack}"
        aws cloudformation delete-stack --region "${AWS_REGION}" --stack-name "${stack}"
        aws cloudformation wait stack-delete-complete --region "${AWS_REGION}" --stack-name "${stack}" \
            || die "deleting ${stack} failed: see aws cloudformation describe-stack-events --region ${AWS_REGION} --stack-name ${stack}"
        return 0
    fi
    printf 'error: stack %s is in ROLLBACK_COMPLETE: its creation failed and CloudFormation cannot update it.\n' "${stack}" >&2
    printf 'What failed:\n%s\n' "$(stack_failures "${stack}")" >&2
    printf 'Fix the cause, delete the stack and run install.sh again:\n' >&2
    printf '  aws cloudformation delete-stack --region %s --stack-name %s\n' "${AWS_REGION}" "${stack}" >&2
    printf '  aws cloudformation wait stack-delete-complete --region %s --stack-name %s\n' "${AWS_REGION}" "${stack}" >&2
    printf 'or run it with DELETE_ROLLED_BACK=1 to have it delete the stack first.\n' >&2
    exit 1
}

# deploy_stack STACK TEMPLATE [aws cloudformation deploy options...]: creates or updates a
# stack; when that fails, prints what failed and how to go on.
deploy_stack() {
    local stack="$1" template="$2"
    shift 2
    ensure_updatable "${stack}"
    if aws cloudformation deploy --region "${AWS_REGION}" --stack-name "${stack}" \
        --template-file "${template}" --no-fail-on-empty-changeset "$@"; then
        return 0
    fi
    printf 'What failed in %s:\n%s\n' "${stack}" "$(stack_failures "${stack}")" >&2
    if [[ "$(stack_status "${stack}")" == "ROLLBACK_COMPLETE" ]]; then
        printf 'Its creation failed and it cannot be updated: fix the cause, then run install.sh again with DELETE_ROLLED_BACK=1.\n' >&2
    fi
    die "deploying ${stack} failed"
}
