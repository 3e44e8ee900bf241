#!/usr/bin/env bash
# Side-by-side build benchmark (issue #7): kiln against rootless buildah
# and, when run as root, BuildKit in Debian's dockerd, on the same
# Dockerfiles and the same offline busybox base, alternating tools, several
# runs each. Prints per case and phase the median and spread (min..max) of
# wall time, the ratio peer/kiln, and kiln's peak RSS.
#
#   sudo scripts/bench.sh [--runs N] [--tools kiln,buildah,buildkit] [CASE…]
#   BENCH_BIG_MB=1024 BENCH_CTX_MB=200 BENCH_PAR_MB=300 scripts/bench.sh …   (data sizes)
#   BENCH_KILN=/path/to/kiln scripts/bench.sh …   (that binary, not a fresh build)
#   BENCH_KEEP_LOGS=/tmp/log scripts/bench.sh …   (each build's output as /tmp/log.<ns>)
#
# Cases: noop-runs multistage-small big-copy-from context-copy many-layers
# parallel-stages many-files export-big remote-cache (default: all). export-big (BENCH_EXPORT_MB, default 512 MiB
# of random + as much text) times exports only, against tar|pigz and
# tar|zstd -T0 of the same tree. remote-cache (BENCH_RCACHE_MB, default
# 32) times a registry cache: scripts/bench-rcache.sh. As root, builds run as the unprivileged user kilntest
# (scripts/testuser.sh) and BuildKit runs in a dockerd started here with its
# own data root and socket (no iptables, no bridge), stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '7,11p' "$0" | sed 's/^# *//' >&2; exit 2; }
runs=3
tools=kiln,buildah,buildkit
cases=()
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=${2:?}; shift 2 ;;
    --runs=*) runs=${1#*=}; shift ;;
    --tools) tools=${2:?}; shift 2 ;;
    --tools=*) tools=${1#*=}; shift ;;
    -h | --help) usage ;;
    -*) echo "bench.sh: unknown option $1" >&2; usage ;;
    *) cases+=("$1"); shift ;;
    esac
done
all_cases=(noop-runs multistage-small big-copy-from context-copy many-layers parallel-stages many-files export-big remote-cache)
[ ${#cases[@]} -gt 0 ] || cases=("${all_cases[@]}")
for c in "${cases[@]}"; do
    [[ " ${all_cases[*]} " == *" $c "* ]] || { echo "bench.sh: unknown case $c" >&2; usage; }
done
big_mb=${BENCH_BIG_MB:-1024}
ctx_mb=${BENCH_CTX_MB:-200}
par_mb=${BENCH_PAR_MB:-300}
IFS=, read -r -a tools <<<"$tools"

as=()
user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    for p in buildah time docker.io skopeo; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
            || apt-get install -y -qq --no-install-recommends "$p" >/dev/null
    done
    bash scripts/testuser.sh >/dev/null
    bash scripts/podman-user.sh kilntest
    user=kilntest
    as=(runuser -u kilntest --)
elif [[ " ${tools[*]} " == *" buildkit "* ]]; then
    echo "bench.sh: not root: BuildKit (a rootful dockerd) is left out" >&2
    tools=("${tools[@]/buildkit/}")
fi
has_tool() { [[ " ${tools[*]} " == *" $1 "* ]]; }
if has_tool buildah; then
    command -v buildah >/dev/null || { echo "bench.sh: buildah is not installed" >&2; exit 1; }
fi

[ -n "${BENCH_KILN:-}" ] || cargo build --release --quiet --bin kiln
# Lowercase: buildah derives an image name from the layout path.
work=/tmp/kiln-bench-$$-$RANDOM
mkdir "$work"
chmod 755 "$work"
dockerd_pid=
cleanup() {
    if declare -F stop_registry >/dev/null; then stop_registry; fi
    stop_dockerd
    (cd / && "${as[@]}" buildah unshare rm -rf "$work/state") >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cp "${BENCH_KILN:-target/release/kiln}" "$work/kiln"
# Every tool's store in a part of the disk of its own: ext4 without a
# journal (this machine's root fs) makes each new inode skip, one lookup
# apiece, the inodes its block group freed in the last minute (five
# while their inode table block is dirty). All of $work sits in one
# group, so a store made just after another was deleted (the previous
# tool's or run's) created its files slower than one made elsewhere.
# With the top-dir flag, ext4 spreads the state dirs over block groups
# as it does top-level dirs.
mkdir -p "$work/state"
chattr +T "$work/state" 2>/dev/null || true
# Every tool builds FROM the same local image name, put into its store
# before the timed builds (untimed, like a base image pulled long ago):
# buildah pulls and tags it from the OCI layout, dockerd gets it with
# `docker load`, kiln with `kiln load` of the same layout as an
# oci-archive named after it. The Dockerfiles say FROM ${BASE}.
base_name=localhost/bench-base:latest
scripts/busybox-image.sh "$work/busybox" >/dev/null
scripts/busybox-image.sh "$work/busybox-named" "$base_name" >/dev/null
tar -C "$work/busybox-named" -cf "$work/base-oci.tar" .
base='${BASE}'

# --- BuildKit: a private dockerd ---------------------------------------------
# Debian's client: the newer one in /usr/local/bin wants buildx.
docker=(/usr/bin/docker -H "unix://$work/docker/sock")
start_dockerd() {
    local d=$work/docker
    mkdir -p "$d"
    dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2 \
        --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
        -H "unix://$d/sock" >"$d/log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 60); do
        "${docker[@]}" version >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.5
    done
    if ! "${docker[@]}" version >/dev/null 2>&1; then
        echo "bench.sh: dockerd did not start:" >&2
        tail -20 "$d/log" >&2
        exit 1
    fi
    skopeo copy -q "oci:$work/busybox:latest" "docker-archive:$d/base.tar:$base_name"
    "${docker[@]}" load -q -i "$d/base.tar" >/dev/null
}
stop_dockerd() {
    [ -n "$dockerd_pid" ] || return 0
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 40); do
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -9 "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
    dockerd_pid=
    # Whatever dockerd left mounted under its data root, so rm can work.
    grep -o " $work/docker[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}

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
    parallel-stages)
        # Two independent slow RUNs, one per stage, then a COPY --from: a
        # scheduler by step runs them side by side. The floor phase is the
        # same build without the final stage's RUN (the slower of the two
        # plus the copy); its builder RUN differs (": floor") so that it
        # is not a cache hit.
        local write="for i in \$(seq $((par_mb * 2))); do head -c 524288 /dev/urandom > /data/f\$i; done"
        cat >"$dir/Dockerfile" <<EOF
FROM $base AS builder
RUN mkdir /data && $write
FROM $base
RUN mkdir /data && $write && mv /data /own
COPY --from=builder /data /data
EOF
        mkdir -p "$dir-floor"
        cat >"$dir-floor/Dockerfile" <<EOF
ARG BASE
FROM $base AS builder
RUN : floor && mkdir /data && $write
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
    export-big) make_export_case "$dir" ;;
    many-files)
        # A node_modules-like tree made by a RUN: 1,000 packages of 30
        # files (100 B..4 KiB, in 3 dirs each), 300 symlinks in .bin,
        # then COPY --from into the final stage. The changed phase edits
        # src/f1.txt, which the builder COPYs before its RUN: the RUN
        # reruns and the tree differs in that one file, so the COPY
        # --from reruns too. One awk writes every file (no fork per file,
        # so the RUN itself is short and the same for every tool).
        mkdir -p "$dir/src"
        echo "file 1" >"$dir/src/f1.txt"
        cat >"$dir/Dockerfile" <<'EOF'
FROM ${BASE} AS builder
COPY src/f1.txt /seed.txt
RUN mkdir -p /app/node_modules/.bin && cd /app \
 && tree='BEGIN { srand(7); s = "module.exports = function () { return 42 }; // "; \
      while (length(s) < 4096) s = s s; \
      for (p = 1; p <= 1000; p++) { d = "node_modules/pkg" p; \
        if (mode == "dirs") { print d "/lib/internal"; print d "/dist"; continue } \
        for (f = 1; f <= 30; f++) { sd = f <= 10 ? "/lib/internal" : f <= 20 ? "/dist" : ""; \
          path = d sd "/f" f ".js"; printf "%s", substr(s, 1, 100 + int(rand() * 3997)) > path; close(path) } } }' \
 && awk -v mode=dirs "$tree" | xargs mkdir -p && awk -v mode=files "$tree" \
 && cd node_modules/.bin && ln -s $(awk 'BEGIN { for (i = 1; i <= 300; i++) print "../pkg" i }') . \
 && cp /seed.txt /app/node_modules/pkg1/seed.txt
FROM ${BASE}
COPY --from=builder /app /app
EOF
        ;;
    many-layers)
        # Each step prints a microsecond timestamp (busybox adjtimex reads
        # the clock unprivileged), so the time between consecutive steps —
        # commit, cache, mount, exec — is measured the same for every tool.
        { echo "FROM $base"
          for i in $(seq 120); do
              echo "RUN echo \"STEPTS $i \$(adjtimex | awk '/tv_sec/{s=\$2} /tv_usec/{u=\$2} END{printf \"%.0f\", s*1e6+u}')\" | tee /layer-$i"
          done; } >"$dir/Dockerfile" ;;
    esac
    sed -i '1i ARG BASE' "$dir/Dockerfile"
}

# --- running ----------------------------------------------------------------
# Before each timed build (untimed): the previous build's dirty pages are
# written back (kiln syncs at its end, dockerd and buildah do not), and the
# machine idles long enough for the VM's free page reporting
# (virtio-balloon, ~2 s) to hand every freed page back to the host. Writing
# into pages freed a moment ago is ~7× faster here (1 GiB: 0.21 s vs
# 1.49 s), so without the pause a tool that deletes its old data just
# before building (BuildKit's prune) writes into warm pages and the others
# into cold ones. BENCH_SETTLE=seconds (default 4; 0 skips the pause).
settle() {
    sync
    sleep "${BENCH_SETTLE:-4}"
}

# One timed build; prints "seconds peak_rss_kb" and leaves the build's
# output in $work/time/log. BUILD_AS=root runs it as root (dockerd's client).
# Wall time from bash's $EPOCHREALTIME (GNU time's %e has 10 ms steps);
# peak RSS from GNU time: the largest process of the build.
timed() {
    local tf=$work/time/t who=("${as[@]}")
    [ "${BUILD_AS:-}" = root ] && who=()
    mkdir -p "$work/time" && chown "$user" "$work/time"
    rm -f "$tf" "$tf.rss" "$work/time/log"
    # shellcheck disable=SC2016 # expanded by the inner bash
    if ! (cd / && "${who[@]}" bash -c 'tf=$1; log=$2; shift 2
            s=$EPOCHREALTIME
            /usr/bin/time -o "$tf.rss" -f %M "$@" >"$log" 2>&1 || exit
            e=$EPOCHREALTIME
            echo "$s $e $(tail -1 "$tf.rss")" >"$tf"' timed "$tf" "$work/time/log" "$@"); then
        echo "bench.sh: build failed: $*" >&2
        tail -20 "$work/time/log" >&2
        exit 1
    fi
    if [ -n "${BENCH_KEEP_LOGS:-}" ]; then cp "$work/time/log" "$BENCH_KEEP_LOGS.$(date +%s%N)"; fi
    awk '{printf "%.4f %d\n", $2-$1, $3}' "$tf"
}

kiln_prepare() { # state
    (cd / && "${as[@]}" "$work/kiln" --root "$1" load -i "$work/base-oci.tar") >/dev/null
}
kiln_build() { # case state
    timed "$work/kiln" --root "$2" build --progress=plain --build-arg "BASE=$base_name" \
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
    buildah_cmd "$1" tag "$id" "$base_name" >/dev/null
}
buildah_build() { # case state
    timed buildah --root "$2/root" --runroot "$2/run" --storage-driver overlay \
        bud --layers --isolation chroot --build-arg "BASE=$base_name" -t bench "$work/cases/$1"
}

# Cold for BuildKit: its build cache and the last result are dropped (the
# base image stays loaded, as it stays in the other tools' stores).
buildkit_prepare() {
    "${docker[@]}" image rm -f bench >/dev/null 2>&1 || true
    "${docker[@]}" builder prune -af >/dev/null
}
buildkit_build() { # case state
    DOCKER_BUILDKIT=1 BUILD_AS=root timed "${docker[@]}" build --progress=plain --network host \
        --build-arg "BASE=$base_name" -t bench "$work/cases/$1"
}

# Mean milliseconds between consecutive STEPTS lines of the last build, for
# steps $1..$2 (step i's interval: from step i-1's timestamp to step i's).
step_ms() {
    grep -o 'STEPTS [0-9]\+ [0-9]\{10,\}' "$work/time/log" | sort -k2,2n -u |
        awk -v lo="$1" -v hi="$2" '{t[$2]=$3} END {
            n=0; s=0; for (i=lo; i<=hi; i++) if ((i in t) && ((i-1) in t)) { s+=t[i]-t[i-1]; n++ }
            if (n) printf "%.2f", s/n/1000 }'
}

median() { grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (!NR) exit; m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
spread() { grep -v '^$' | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {if (NR) printf "%.3f..%.3f", lo, hi}'; }

declare -A times
record() { [ -n "$2" ] && times[$1]+="$2"$'\n'; return 0; }

phases_of() {
    case $1 in
    noop-runs | context-copy | big-copy-from | many-layers) echo cold unchanged ;;
    multistage-small | many-files) echo cold unchanged changed ;;
    parallel-stages) echo cold unchanged floor ;;
    *) echo cold ;;
    esac
}

bench_case() {
    local name=$1 phases
    read -r -a phases <<<"$(phases_of "$name")"
    make_case "$name"
    chmod -R a+rX "$work"
    for r in $(seq "$runs"); do
        for tool in "${tools[@]}"; do
            [ -n "$tool" ] || continue
            local state=$work/state/$tool-$name-$r
            mkdir -p "$state" && chown "$user" "$work/state" "$state"
            "${tool}_prepare" "$state" || { echo "bench.sh: $tool: preparing its store failed" >&2; exit 1; }
            for phase in "${phases[@]}"; do
                if [ "$phase" = changed ]; then echo "file 1 changed $r" >"$work/cases/$name/src/f1.txt"; fi
                local res
                settle
                local built=$name
                [ "$phase" = floor ] && built=$name-floor
                res=$("${tool}_build" "$built" "$state")
                record "$name/$phase/$tool" "${res% *}"
                [ "$tool" = kiln ] && record "$name/rss" "${res#* }"
                if [ "$name" = many-layers ]; then
                    record "$name/ms-step2-11/$tool" "$(step_ms 2 11)"
                    record "$name/ms-step111-120/$tool" "$(step_ms 111 120)"
                fi
            done
            # Every tool's data goes right after its runs, so the next
            # tool does not build beside it (BuildKit's 3 GiB left on
            # disk made the next kiln build of big-copy-from 2 s slower).
            # Store files belong to subordinate ids: removed from inside a
            # user namespace.
            [ "$tool" = buildkit ] && buildkit_prepare
            (cd / && "${as[@]}" buildah unshare rm -rf "$state") >/dev/null 2>&1 || true
            [ -d "$work/cases/$name/src" ] && echo "file 1" >"$work/cases/$name/src/f1.txt"
        done
    done
    [ "$name" = many-layers ] && phases+=(ms-step2-11 ms-step111-120)
    for phase in "${phases[@]}"; do
        local k line
        k=$(median <<<"${times[$name/$phase/kiln]:-}")
        line=$(printf '%-17s %-15s' "$name" "$phase")
        for tool in "${tools[@]}"; do
            [ -n "$tool" ] || continue
            local m=${k}
            [ "$tool" = kiln ] || m=$(median <<<"${times[$name/$phase/$tool]:-}")
            line+=$(printf ' %s %8s (%s)' "$tool" "${m:--}" "$(spread <<<"${times[$name/$phase/$tool]:-}")")
            if [ "$tool" != kiln ] && [ -n "$k" ] && [ -n "$m" ]; then
                line+=$(awk -v p="$m" -v k="$k" 'BEGIN{ if (k>0) printf " %.1fx", p/k }')
            fi
        done
        echo "$line"
    done
    printf '%-17s %-15s kiln %s MiB (max of runs)\n' "$name" "peak-rss" \
        "$(grep -v '^$' <<<"${times[$name/rss]:-}" | sort -n | tail -1 | awk '{printf "%.1f", $1/1024}')"
}

source scripts/bench-export.sh
source scripts/bench-rcache.sh
has_tool buildkit && start_dockerd
echo "kiln ${BENCH_KILN:-$(git describe --always --dirty 2>/dev/null)} vs${tools[*]/kiln/}:" \
    "$runs runs each; seconds (ms for ms-step*), median (min..max), peer/kiln ratio"
has_tool buildah && echo "  buildah $(buildah --version | awk '{print $3}'), rootless, overlay, --layers, chroot isolation"
has_tool buildkit && echo "  BuildKit in dockerd $("${docker[@]}" version -f '{{.Server.Version}}'), rootful, overlay2"
for c in "${cases[@]}"; do
    case $c in
    export-big) bench_export_big ;;
    remote-cache) bench_remote_cache ;;
    *) bench_case "$c" ;;
    esac
done
