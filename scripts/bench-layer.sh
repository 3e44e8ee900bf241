#!/usr/bin/env bash
# Benchmark (not a test): kiln-layer's capture-to-gzip against
# `tar -c | gzip` and `tar -c | pigz` on the same generated tree.
# Median of RUNS wall times each; output goes to /dev/null (no disk write).
# Usage: KILN_BENCH_MB=1024 RUNS=3 scripts/bench-layer.sh
#   KILN_BENCH_MB   total data size in MiB (default 1024)
#   KILN_BENCH_DIR  reuse/keep the tree here instead of a fresh temp dir
#   KILN_BENCH_SPARSE_GB  size of the sparse-file capture bench (default 2, 0: skip)
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${KILN_BENCH_MB:-1024}
runs=${RUNS:-3}

command -v pigz >/dev/null || apt-get install -y pigz >/dev/null

cargo build --release -p kiln-layer --bench capture --quiet 2>/dev/null ||
    cargo bench -p kiln-layer --bench capture --no-run --quiet
bin=$(ls -t target/release/deps/capture-* | grep -v '\.d$' | head -1)

if [ -n "${KILN_BENCH_DIR:-}" ]; then
    dir=$KILN_BENCH_DIR
    keep=1
else
    dir=$(mktemp -d /tmp/kiln-layer-bench.XXXXXX)
    keep=0
fi
trap '[ "$keep" = 1 ] || rm -rf "$dir"' EXIT

# The tree: ~1/4 of the bytes in small text-like files (compressible, many
# entries), 3/4 in large files, half random (incompressible) half text.
if [ ! -e "$dir/.done" ]; then
    python3 - "$dir" "$mb" layer/src/*.rs <<'PY'
import os, random, sys
root, mb, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
text = b"".join(open(s, "rb").read() for s in sources)
while len(text) < 1 << 20:
    text += text
rng = random.Random(42)
# A quarter of the bytes in 2-16 KiB files, 500 per directory.
small, i = mb * 1024 * 1024 // 4, 0
while small > 0:
    d = os.path.join(root, "small", "d%d" % (i // 500))
    os.makedirs(d, exist_ok=True)
    n = rng.randrange(2048, 16384)
    off = rng.randrange(0, len(text) - n)
    with open(os.path.join(d, "f%d" % i), "wb") as f:
        f.write(text[off:off + n])
    small -= n
    i += 1
# The rest in 32 MiB files, alternately random and text-like.
os.makedirs(os.path.join(root, "big"), exist_ok=True)
big, j = mb * 1024 * 1024 * 3 // 4, 0
while big > 0:
    n = min(32 << 20, big)
    with open(os.path.join(root, "big", "b%d" % j), "wb") as f:
        for k in range(0, n, 1 << 20):
            m = min(1 << 20, n - k)
            f.write(os.urandom(m) if j % 2 == 0 else text[:m])
    big -= n
    j += 1
PY
    touch "$dir/.done"
fi
data=$(du -sb "$dir" | cut -f1)
echo "tree: $dir, $((data / 1024 / 1024)) MiB, $(find "$dir" -type f | wc -l) files; $(nproc) cores"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_cmd() {
    for _ in $(seq "$runs"); do
        s=$(date +%s.%N)
        sh -c "$1" >/dev/null
        e=$(date +%s.%N)
        echo "$e - $s" | bc
    done | median
}

tar -C "$dir" -cf - . >/dev/null # warm the page cache
kiln_out=$("$bin" "$dir" gzip "$runs")
echo "$kiln_out"
kiln=$(echo "$kiln_out" | sed -n 's/.*median \([0-9.]*\) s.*/\1/p')
gz=$(time_cmd "tar -C '$dir' -cf - . | gzip -6 -n")
pz=$(time_cmd "tar -C '$dir' -cf - . | pigz -6 -n")
printf 'tar|gzip: %.3f s (%.1f MB/s)\n' "$gz" "$(echo "$data / $gz / 1000000" | bc -l)"
printf 'tar|pigz: %.3f s (%.1f MB/s)\n' "$pz" "$(echo "$data / $pz / 1000000" | bc -l)"
printf 'speedup of kiln-layer: %.2fx vs tar|gzip, %.2fx vs tar|pigz\n' \
    "$(echo "$gz / $kiln" | bc -l)" "$(echo "$pz / $kiln" | bc -l)"

# A sparse file (KILN_BENCH_SPARSE_GB GiB, 5 bytes of data): its holes are
# still hashed (and compressed) as zeros, but never read from the disk.
sparse_gb=${KILN_BENCH_SPARSE_GB:-2}
if [ "$sparse_gb" != 0 ]; then
    sp=$(mktemp -d /tmp/kiln-layer-sparse.XXXXXX)
    truncate -s "${sparse_gb}G" "$sp/big"
    printf 'hello' | dd of="$sp/big" bs=1 seek=1000000 conv=notrunc 2>/dev/null
    echo "sparse: ${sparse_gb} GiB file, $(du -k "$sp/big" | cut -f1) KiB allocated"
    "$bin" "$sp" none "$runs"
    "$bin" "$sp" gzip "$runs"
    rm -rf "$sp"
fi
