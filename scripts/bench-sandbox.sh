#!/usr/bin/env bash
# Benchmark (not a test): median wall time of kiln_sandbox::run for
# /bin/true over a 1-layer and a 100-layer stack, next to
# `unshare --user --map-root-user --mount --pid --fork true` measured in the
# same run. Runs as the unprivileged kilntest user (scripts/testuser.sh).
# Usage: scripts/bench-sandbox.sh [ITERATIONS]   (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300}

if [ "$(id -u)" -ne 0 ]; then
    echo "bench-sandbox.sh: run as root (it switches to the kilntest user)" >&2
    exit 1
fi
bash scripts/testuser.sh >/dev/null
cargo build --release -p kiln-sandbox --bin kiln-sandbox-run --quiet

dir=$(mktemp -d /tmp/kiln-sandbox-bench.XXXXXX)
cp target/release/kiln-sandbox-run "$dir/"
chown -R kilntest: "$dir"
chmod 755 "$dir"
bin="$dir/kiln-sandbox-run"
trap 'runuser -u kilntest -- "$bin" rm "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

# The fixture is made by kilntest so its files belong to ids mapped in the
# namespace (as the store's layers do).
runuser -u kilntest -- sh -euc '
    d=$1
    b=$d/base
    mkdir -p "$b/bin" "$b/etc" "$b/proc" "$b/dev" "$b/sys" "$b/tmp"
    cp /bin/busybox "$b/bin/busybox"
    for a in $(/bin/busybox --list-full); do
        mkdir -p "$b/$(dirname "$a")"
        [ -e "$b/$a" ] || ln -s /bin/busybox "$b/$a"
    done
    echo "root:x:0:0:root:/root:/bin/sh" >"$b/etc/passwd"
    echo "root:x:0:" >"$b/etc/group"
    : >"$b/etc/hosts"
    : >"$b/etc/resolv.conf"
    : >"$d/lowers100"
    for i in $(seq 99 -1 1); do
        l=$d/layers/sha256-layer-$i
        mkdir -p "$l/var/lib/layer"
        echo "$i" >"$l/var/lib/layer/$i"
        echo "$l" >>"$d/lowers100"
    done
    echo "$b" >>"$d/lowers100"
    mkdir -p "$d/s1" "$d/s100"
' sh "$dir"

cd /
echo "== 1 layer"
runuser -u kilntest -- "$bin" bench --lower "$dir/base" --scratch "$dir/s1" --iterations "$n"
echo "== 1 layer, no seccomp filter (--security-opt seccomp=unconfined)"
runuser -u kilntest -- "$bin" bench --lower "$dir/base" --scratch "$dir/s1" --iterations "$n" \
    --security-opt seccomp=unconfined
echo "== 100 layers"
runuser -u kilntest -- "$bin" bench --lowers-file "$dir/lowers100" --scratch "$dir/s100" --iterations "$n"
