#!/usr/bin/env bash
# Deploys the X-Ray SDK for Rust reference architecture to ECS Fargate:
#   1. ECR repositories (stack ${STACK_NAME}-ecr),
#   2. builds and pushes the bff, backend1 and backend2 images,
#   3. a VPC with two public subnets (stack ${STACK_NAME}-network),
#   4. the cluster, ALB, services with X-Ray daemon sidecars, table, roles, log groups and
#      sampling rules (stack ${STACK_NAME}-app),
# then prints the URL. Running it again updates everything in place (a stack whose creation
# failed must be deleted first: it says how, or does it with DELETE_ROLLED_BACK=1).
#
# Usage: deploy/scripts/install.sh            (see deploy/scripts/common.sh for settings)
# Needs: aws (CLI v2), docker with buildx; credentials that may create the resources above.
set -euo pipefail

# shellcheck source=deploy/scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need aws "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
need docker "https://docs.docker.com/engine/install/"
resolve_region
ACCOUNT="$(check_credentials)"
PLATFORM="${PLATFORM:-linux/amd64}"
TAG="${IMAGE_TAG:-$(date -u +%Y%m%d%H%M%S)}"
PREFIX="${SERVICE_NAME_PREFIX:-$(service_name_prefix "${STACK_NAME}")}"
valid_service_name_prefix "${PREFIX}" \
    || die "SERVICE_NAME_PREFIX '${PREFIX}' is not valid: 1 to 16 of a-z, 0-9 and -, a letter first, no - last"
read -r -a APP_EXTRA <<<"${APP_PARAMETERS:-}"
read -r -a NETWORK_EXTRA <<<"${NETWORK_PARAMETERS:-}"
printf 'Deploying stacks %s-{ecr,network,app} to account %s, region %s (service names %s-*)\n' \
    "${STACK_NAME}" "${ACCOUNT}" "${AWS_REGION}" "${PREFIX}"

step "ECR repositories"
deploy_stack "${ECR_STACK}" "${TEMPLATES}/ecr.yaml"

step "Building and pushing images (tag ${TAG}, platform ${PLATFORM})"
aws ecr get-login-password --region "${AWS_REGION}" \
    | docker login --username AWS --password-stdin "${ACCOUNT}.dkr.ecr.${AWS_REGION}.amazonaws.com"
declare -A IMAGES=()
for pair in bff:BffRepositoryUri backend1:Backend1RepositoryUri backend2:Backend2RepositoryUri; do
    bin="${pair%%:*}"
    repo="$(stack_output "${ECR_STACK}" "${pair#*:}")"
    [[ -n "${repo}" && "${repo}" != "None" ]] || die "stack ${ECR_STACK} has no output ${pair#*:}"
    image="${repo}:${TAG}"
    printf -- '--- %s -> %s\n' "${bin}" "${image}"
    docker build --platform "${PLATFORM}" -f "${DEPLOY_DIR}/Dockerfile" \
        --build-arg "BIN=${bin}" -t "${image}" "${REPO_ROOT}"
    docker push "${image}"
    IMAGES[${bin}]="${image}"
done

step "Network (VPC, two public subnets)"
network_overrides=()
((${#NETWORK_EXTRA[@]} == 0)) || network_overrides=(--parameter-overrides "${NETWORK_EXTRA[@]}")
deploy_stack "${NETWORK_STACK}" "${TEMPLATES}/network.yaml" "${network_overrides[@]}"
VPC_ID="$(stack_output "${NETWORK_STACK}" VpcId)"
SUBNET_IDS="$(stack_output "${NETWORK_STACK}" SubnetIds)"

step "Application (ECS cluster, ALB, services, DynamoDB table, sampling rules)"
deploy_stack "${APP_STACK}" "${TEMPLATES}/app.yaml" --capabilities CAPABILITY_IAM \
    --parameter-overrides \
    "VpcId=${VPC_ID}" \
    "SubnetIds=${SUBNET_IDS}" \
    "BffImage=${IMAGES[bff]}" \
    "Backend1Image=${IMAGES[backend1]}" \
    "Backend2Image=${IMAGES[backend2]}" \
    "ServiceNamePrefix=${PREFIX}" \
    "${APP_EXTRA[@]}"

step "Done"
"$(dirname "${BASH_SOURCE[0]}")/url.sh"
printf '\nOpen the URL, click "Ask the backends" a few times, then look at the service map\n'
printf '(X-Ray traces appear within a minute). Remove everything with deploy/scripts/uninstall.sh\n'
