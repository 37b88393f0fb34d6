#!/usr/bin/env bash
# Every feature of every published crate builds on its own: each crate with no features, then
# with each one alone (what `cargo hack check --each-feature --no-dev-deps` does, without
# installing it). The features are read from the manifests, so a new one is checked without
# editing this script. Library targets only: tests and examples build with all features in
# clippy and the test run.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t checks < <(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
for pkg in meta["packages"]:
    if pkg["id"] not in members or pkg.get("publish") == []:
        continue
    print(pkg["name"])
    for feature in sorted(pkg["features"]):
        if feature != "default":
            print(pkg["name"] + " " + feature)
')

for check in "${checks[@]}"; do
    read -r crate feature <<< "${check}"
    if [ -z "${feature:-}" ]; then
        echo "--- ${crate}: no features"
        cargo check --quiet -p "${crate}" --lib --bins --no-default-features
    else
        echo "--- ${crate}: --features ${feature}"
        cargo check --quiet -p "${crate}" --lib --bins --no-default-features --features "${feature}"
    fi
done
