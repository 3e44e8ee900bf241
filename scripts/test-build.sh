#!/usr/bin/env bash
# The rootless end-to-end tests (tests/build.rs): kiln runs as the
# UNPRIVILEGED user kilntest (with its own subordinate id range, given by
# scripts/testuser.sh), and the
# images it builds are proven with podman, skopeo and umoci as that user.
# The release binary and the busybox base image are made once and shared
# by every test. Ends with "build: N passed, M failed"; non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test-build.sh: run as root (it creates the test user and switches to it)" >&2
    exit 1
fi
bash scripts/testuser.sh >/dev/null
bash scripts/podman-user.sh kilntest

# Not --quiet: a first build takes minutes, and cargo's "Compiling …"
# lines (on stderr, as its errors) show it is under way.
echo "test-build.sh: building kiln and the test suites (release)" >&2
cargo build --release --bin kiln
# Every tests/*.rs is a rootless suite except check.rs (cargo test runs it).
# KILN_SUITES="mounts sources" runs only those suites.
default_suites=$(cd tests && ls ./*.rs | sed 's#^\./##; s#\.rs$##' | grep -vx check | tr '\n' ' ')
read -r -a suites <<<"${KILN_SUITES:-$default_suites}"
json=$(cargo test --release "${suites[@]/#/--test=}" --no-run --message-format=json)

dir=$(mktemp -d /tmp/kiln-build-bin.XXXXXX)
chmod 755 "$dir"
cp target/release/kiln "$dir/kiln"
for suite in "${suites[@]}"; do
    # The binary is deps/SUITE-HASH: anchored there, a checkout path that
    # holds "/SUITE-" (/work/wt/export-speed) cannot match another suite.
    exe=$(grep -o "\"executable\":\"[^\"]*/deps/$suite-[0-9a-f]*\"" <<<"$json" | head -1 | cut -d'"' -f4)
    [ -n "$exe" ] || { echo "test-build.sh: could not find the $suite test binary" >&2; exit 1; }
    cp "$exe" "$dir/$suite-tests"
done
cp -r examples "$dir/examples"
scripts/busybox-image.sh "$dir/busybox" >/dev/null
# The same under one tag for amd64 and arm64 (tests/platform.rs).
scripts/busybox-image.sh "$dir/busybox-multi" latest amd64 arm64 >/dev/null
chmod -R a+rX "$dir"
# skopeo/podman as kilntest would otherwise read /run/containers/UID/auth.json,
# which is unreadable once root has run podman (it makes /run/containers 0700).
# The tests' own dirs live in a per-run TMPDIR, so a second run of this
# script (another checkout) never removes this run's dirs, nor this one theirs.
work=$(mktemp -d /tmp/kiln-build-run.XXXXXX)
echo '{"auths":{}}' >"$work/auth.json"
chown kilntest: "$work" "$work/auth.json"
cleanup() {
    (cd / && runuser -u kilntest -- podman unshare rm -rf "$work") >/dev/null 2>&1 || true
    rm -rf "$dir" "$work"
}
trap cleanup EXIT

log=$(mktemp)
status=0
for suite in "${suites[@]}"; do
    (cd / && runuser -u kilntest -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/home/kilntest \
        USER=kilntest LOGNAME=kilntest XDG_RUNTIME_DIR= TMPDIR="$work" \
        REGISTRY_AUTH_FILE="$work/auth.json" \
        KILN_BIN="$dir/kiln" KILN_TEST_BASE="$dir/busybox" KILN_TEST_MULTI_BASE="$dir/busybox-multi" KILN_TEST_EXAMPLES="$dir/examples" \
        "$dir/$suite-tests" --include-ignored --test-threads=2 "$@") 2>&1 | tee -a "$log" || status=1
done
passed=$(grep -o '[0-9]* passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -o '[0-9]* failed' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"
if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
    status=1
fi
echo "build: $passed passed, $failed failed"
exit "$status"
