#!/usr/bin/env bash
# Durable-store throughput in release mode, beside raw SQLite in the same run.
#   tools/bench/store.sh [--repeats N] [--scale X] [--sync full|normal]
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --scratch-path .build-release --product sluice-bench-store >&2
exec .build-release/release/sluice-bench-store "$@"
