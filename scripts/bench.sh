#!/usr/bin/env bash
# Side-by-side build benchmark: kiln against rootless buildah (and, run as
# root with BENCH_BUILDKIT=1, BuildKit in Debian's dockerd), on the same
# Dockerfiles and the same offline busybox base, alternating tools, several
# runs each. Prints per case and phase the median and spread (min..max) of
# wall time, the ratio peer/kiln, and kiln's peak RSS.
#
#   sudo scripts/bench.sh                 # as root: builds run as kilntest
#   BENCH_RUNS=5 BENCH_BIG_MB=1024 BENCH_CTX_MB=200 scripts/bench.sh [CASE…]
#
# Cases: noop-runs multistage-small big-copy-from context-copy many-layers.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-3}
big_mb=${BENCH_BIG_MB:-1024}
ctx_mb=${BENCH_CTX_MB:-200}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(noop-runs multistage-small big-copy-from context-copy many-layers)

as=()
user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    for p in buildah time; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
            || apt-get install -y -qq "$p" >/dev/null
    done
    bash scripts/testuser.sh >/dev/null
    bash scripts/podman-user.sh kilntest
    user=kilntest
    as=(runuser -u kilntest --)
fi
command -v buildah >/dev/null || { echo "bench.sh: buildah is not installed" >&2; exit 1; }

cargo build --release --quiet --bin kiln
# Lowercase: buildah derives an image name from the layout path.
work=/tmp/kiln-bench-$$-$RANDOM
mkdir "$work"
chmod 755 "$work"
cleanup() {
    (cd / && "${as[@]}" buildah unshare rm -rf "$work/state") >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
cp target/release/kiln "$work/kiln"
scripts/busybox-image.sh "$work/busybox" >/dev/null
# kiln reads the base straight from the layout; buildah cannot take a
# transport in FROM, so each buildah store gets it pulled and tagged first
# (untimed). The Dockerfiles say FROM ${BASE}.
kiln_base="oci:$work/busybox:latest"
buildah_base=localhost/bench-base:latest
base='${BASE}'

# --- the cases --------------------------------------------------------------
make_case() {
    local name=$1 dir=$work/cases/$1
    mkdir -p "$dir"
    case $name in
    noop-runs)
        { echo "FROM $base"; for _ in $(seq 20); do echo "RUN true"; done; } >"$dir/Dockerfile" ;;
    multistage-small)
        mkdir -p "$dir/src"
        for i in $(seq 200); do echo "file $i" >"$dir/src/f$i.txt"; done
        head -c $((5 << 20)) /dev/urandom >"$dir/big.bin"
        cat >"$dir/Dockerfile" <<EOF
FROM $base AS builder
WORKDIR /build
COPY src/ src/
COPY big.bin .
RUN cat src/*.txt > all.txt && md5sum big.bin > big.md5
FROM $base AS tools
RUN echo tool > /tool
FROM $base
WORKDIR /app
ENV MODE=prod
LABEL bench=multistage
COPY --from=builder /build/all.txt /build/big.md5 ./
COPY --from=1 /tool /usr/local/bin/tool
EXPOSE 8080
USER 65534
CMD ["cat", "/app/all.txt"]
EOF
        ;;
    big-copy-from)
        cat >"$dir/Dockerfile" <<EOF
FROM $base AS builder
RUN mkdir /data && for i in \$(seq $((big_mb * 2))); do head -c 524288 /dev/urandom > /data/f\$i; done
FROM $base
COPY --from=builder /data /data
EOF
        ;;
    context-copy)
        mkdir -p "$dir/ctx"
        for d in $(seq 50); do
            mkdir -p "$dir/ctx/d$d"
            for f in $(seq 100); do echo "small $d $f" >"$dir/ctx/d$d/f$f"; done
        done
        for i in $(seq 10); do head -c $((ctx_mb * 1024 * 1024 / 10)) /dev/urandom >"$dir/ctx/large$i"; done
        printf 'FROM %s\nCOPY ctx/ /ctx/\n' "$base" >"$dir/Dockerfile" ;;
    many-layers)
        { echo "FROM $base"; for i in $(seq 120); do echo "RUN echo $i > /layer-$i"; done; } >"$dir/Dockerfile" ;;
    esac
    sed -i '1i ARG BASE' "$dir/Dockerfile"
}

# --- running ----------------------------------------------------------------
# One timed build (as the bench user); prints "seconds peak_rss_kb".
timed() {
    local tf=$work/state/time
    if ! (cd / && "${as[@]}" /usr/bin/time -o "$tf" -f '%e %M' "$@" >/dev/null 2>"$work/last.err"); then
        echo "bench.sh: build failed: $*" >&2
        tail -20 "$work/last.err" >&2
        exit 1
    fi
    cat "$tf"
}

kiln_build() { # case store
    timed "$work/kiln" --root "$2" build --progress=plain --build-arg "BASE=$kiln_base" \
        -t bench "$work/cases/$1"
}

buildah_cmd() { # state args…
    local state=$1
    shift
    (cd / && "${as[@]}" buildah --root "$state/root" --runroot "$state/run" --storage-driver overlay "$@")
}

buildah_prepare() { # state
    local id
    id=$(buildah_cmd "$1" pull -q "oci:$work/busybox:latest")
    buildah_cmd "$1" tag "$id" "$buildah_base" >/dev/null
}

buildah_build() { # case state
    timed buildah --root "$2/root" --runroot "$2/run" --storage-driver overlay \
        bud --layers --isolation chroot --build-arg "BASE=$buildah_base" -t bench "$work/cases/$1"
}

median() { grep -v '^$' | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
spread() { grep -v '^$' | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.3f..%.3f", lo, hi}'; }

declare -A times
record() { times[$1]+="$2"$'\n'; }

bench_case() {
    local name=$1 phases=(cold unchanged)
    [ "$name" = multistage-small ] && phases+=(changed)
    [ "$name" = context-copy ] || [ "$name" = noop-runs ] || [ "$name" = multistage-small ] || phases=(cold)
    make_case "$name"
    chmod -R a+rX "$work"
    for r in $(seq "$runs"); do
        for tool in kiln buildah; do
            local state=$work/state/$tool-$name-$r
            mkdir -p "$state" && chown "$user" "$work/state" "$state"
            [ "$tool" = buildah ] && buildah_prepare "$state"
            for phase in "${phases[@]}"; do
                if [ "$phase" = changed ]; then echo "file 1 changed $r" >"$work/cases/$name/src/f1.txt"; fi
                local res
                res=$("${tool}_build" "$name" "$state")
                record "$name/$phase/$tool" "${res% *}"
                [ "$tool" = kiln ] && record "$name/rss" "${res#* }"
            done
            (cd / && "${as[@]}" buildah unshare rm -rf "$state") >/dev/null 2>&1 || true
            [ -d "$work/cases/$name/src" ] && echo "file 1" >"$work/cases/$name/src/f1.txt"
        done
    done
    for phase in "${phases[@]}"; do
        local k b
        k=$(median <<<"${times[$name/$phase/kiln]}")
        b=$(median <<<"${times[$name/$phase/buildah]}")
        printf '%-18s %-10s kiln %8ss (%s)  buildah %8ss (%s)  buildah/kiln %6.1fx\n' \
            "$name" "$phase" "$k" "$(spread <<<"${times[$name/$phase/kiln]}")" \
            "$b" "$(spread <<<"${times[$name/$phase/buildah]}")" "$(awk -v b="$b" -v k="$k" 'BEGIN{print (k>0)?b/k:0}')"
    done
    printf '%-18s kiln peak RSS %s MiB\n' "$name" "$(grep -v '^$' <<<"${times[$name/rss]}" | sort -n | tail -1 | awk '{printf "%.1f", $1/1024}')"
}

echo "kiln vs rootless buildah $(buildah --version | awk '{print $3}'), $runs runs each, medians (min..max)"
for c in "${cases[@]}"; do
    bench_case "$c"
done
