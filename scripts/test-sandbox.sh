#!/usr/bin/env bash
# Run the kiln-sandbox tests the way they must run: as an UNPRIVILEGED user
# with a subordinate id range (kilntest), plus the no-range test as a user
# without one (kilnnorange). Builds as the invoking user (root in CI), copies
# the test binaries where the test users can reach them, and ends with one
# line "sandbox: N passed, M failed". Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test-sandbox.sh: run as root (it creates test users and switches to them)" >&2
    exit 1
fi
bash scripts/testuser.sh

# Cargo's progress and errors go to stderr (a first build takes minutes).
echo "test-sandbox.sh: building the sandbox tests" >&2
json=$(cargo test -p kiln-sandbox --no-run --message-format=json)
cargo build -p kiln-sandbox --bin kiln-sandbox-run --quiet
unit=$(grep -o '"executable":"[^"]*/deps/kiln_sandbox-[0-9a-f]*"' <<<"$json" | head -1 | cut -d'"' -f4)
integ=$(grep -o '"executable":"[^"]*/deps/sandbox-[0-9a-f]*"' <<<"$json" | head -1 | cut -d'"' -f4)
if [ -z "$unit" ] || [ -z "$integ" ]; then
    echo "test-sandbox.sh: could not find the test binaries" >&2
    exit 1
fi

dir=$(mktemp -d /tmp/kiln-sandbox-bin.XXXXXX)
chmod 755 "$dir"
cp "$unit" "$dir/unit"
cp "$integ" "$dir/sandbox"
cp target/debug/kiln-sandbox-run "$dir/kiln-sandbox-run"
chmod 755 "$dir"/*
# The tests' dirs live in a per-run TMPDIR (one per user), so a concurrent
# run from another checkout never removes this run's dirs.
work=$(mktemp -d /tmp/kiln-sandbox-run.XXXXXX)
chmod 755 "$work"
for u in kilntest kilnnorange; do install -d -o "$u" "$work/$u"; done
cleanup() {
    for u in kilntest kilnnorange; do
        # Leftovers may be owned by subordinate ids: delete inside the userns.
        (cd / && runuser -u "$u" -- sh -c \
            "ls -d $work/$u/kiln-sandbox-test-* 2>/dev/null | xargs -r -n 50 \"$dir/kiln-sandbox-run\" rm" \
            >/dev/null 2>&1) || true
    done
    rm -rf "$dir" "$work"
}
trap cleanup EXIT

log=$(mktemp)
status=0
as() {
    local user=$1
    shift
    (cd / && runuser -u "$user" -- env TMPDIR="$work/$user" KILN_SANDBOX_RUN="$dir/kiln-sandbox-run" "$@") 2>&1 \
        | tee -a "$log" || status=1
}
as kilntest "$dir/unit"
as kilntest "$dir/sandbox" --include-ignored --skip no_range
as kilnnorange "$dir/sandbox" --ignored no_range

passed=$(grep -o '[0-9]* passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -o '[0-9]* failed' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"
if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
    status=1
fi
echo "sandbox: $passed passed, $failed failed"
exit "$status"
