#!/usr/bin/env bash
# Runs kiln's main job on the multi-stage example in examples/multistage.
# Until the build engine lands this is `kiln build --check`: the Dockerfile
# is parsed, resolved and checked, and the stage plan is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --quiet
target/release/kiln build --check -t kiln-example examples/multistage
