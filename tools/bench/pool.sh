#!/usr/bin/env bash
# Pools and `sluice worker` processes against the ideal, in release mode.
#   tools/bench/pool.sh [--repeats N] [--quick]
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --scratch-path .build-release --product sluice >&2
swift build -c release --scratch-path .build-release --product sluice-bench-pool >&2
exec .build-release/release/sluice-bench-pool --sluice "$PWD/.build-release/release/sluice" "$@"
