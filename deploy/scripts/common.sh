# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this file
# Shared by install.sh, url.sh and uninstall.sh: settings and small helpers.
#
# Settings (environment):
#   STACK_NAME   prefix of the three CloudFormation stacks   (default: xray-demo)
#   AWS_REGION   region to deploy to (default: AWS_DEFAULT_REGION, then the CLI profile's region)
#   AWS_PROFILE  the usual AWS CLI profile selection

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
