#!/usr/bin/env bash
# The core's dependency budget: with default features, `cargo tree -p xray-sdk -e normal`
# (normal dependencies, for this machine's target) may list at most 45 distinct crates,
# xray-sdk itself included. Prints the count and the crates; fails above the limit.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=45

# One line per crate and version; `(*)` marks a crate already listed above it.
crates=$(cargo tree -p xray-sdk -e normal --prefix none |
    sed -e 's/ (\*)$//' |
    grep -E '^[A-Za-z0-9_-]+ v[0-9]' |
    sort -u)
count=$(printf '%s\n' "$crates" | wc -l)

echo "xray-sdk normal dependency tree: ${count} crates (limit ${limit})"
printf '%s\n' "$crates" | sed 's/^/  /'
if [ "$count" -gt "$limit" ]; then
    echo "error: xray-sdk's normal dependency tree has ${count} crates, over the limit of ${limit}" >&2
    exit 1
fi
