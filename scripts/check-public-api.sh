#!/usr/bin/env bash
# Regenerates the listing of every library crate's public API (api/<crate>.txt) from
# rustdoc's JSON output and fails when it differs from the checked-in one: a change to a
# public surface shows up in review. `--update` writes the new listings instead.
# rustdoc's JSON output is unstable; RUSTC_BOOTSTRAP lets the stable toolchain produce it.
set -euo pipefail
cd "$(dirname "$0")/.."

crates=(xray-sdk xray-sdk-tower xray-sdk-reqwest xray-sdk-aws xray-sdk-tracing)
for extra in xray-sdk-lambda xray-sdk-otlp; do
    if [ -d "crates/${extra}" ]; then crates+=("${extra}"); fi
done

# Where cargo writes (CARGO_TARGET_DIR, a config file or ./target).
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
update=false
[ "${1:-}" = "--update" ] && update=true
mkdir -p api
status=0
packages=()
for crate in "${crates[@]}"; do packages+=(-p "${crate}"); done
# xray-local is published as a program; its library (what the binary and its tests are built
# from) is not covered by the SDK's compatibility rules and has no listing, but its type
# names count in the check below.
packages+=(-p xray-local)
# Hidden items are listed too: `#[doc(hidden)]` does not take an item out of the surface.
RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-Z unstable-options --output-format json --document-hidden-items" \
    cargo doc --quiet "${packages[@]}" --no-deps --all-features
for crate in "${crates[@]}"; do
    json="${target_dir}/doc/${crate//-/_}.json"
    listing="api/${crate}.txt"
    if $update; then
        python3 scripts/public-api.py "${json}" > "${listing}"
        echo "wrote ${listing} ($(wc -l < "${listing}") items)"
    elif ! diff -u "${listing}" <(python3 scripts/public-api.py "${json}"); then
        echo "error: the public API of ${crate} changed; review it and run scripts/check-public-api.sh --update" >&2
        status=1
    fi
done
# No two public types of the workspace share a name (each type is listed once, under its
# canonical path, so a name seen twice is two types).
dups=$(cat api/*.txt <(python3 scripts/public-api.py "${target_dir}/doc/xray_local.json") | sed -nE 's/^(#\[non_exhaustive\] )?pub (struct|enum|trait|type) ([A-Za-z0-9_:]+).*$/\3/p' \
    | awk -F'::' '{print $NF}' | sort | uniq -d)
if [ -n "${dups}" ]; then
    echo "error: public type names used more than once in the workspace: ${dups}" >&2
    status=1
fi
exit "${status}"
