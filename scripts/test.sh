#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this).
# Lints first (fmt, clippy), then every crate's tests, then the tests that
# must run as an unprivileged user.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== rootless sandbox tests"
scripts/test-sandbox.sh
echo "== rootless build tests (podman, skopeo, umoci)"
scripts/test-build.sh
echo "== kiln inside containers (rootless podman, docker)"
scripts/test-containers.sh
echo "== all tests passed"
