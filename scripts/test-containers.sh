#!/usr/bin/env bash
# kiln inside CI containers (issue #20): builds a two-stage Dockerfile with
# kiln running inside rootless podman (as the test user kilntest) and inside
# a private dockerd (Debian's docker.io, own data/exec roots, no bridge), in
# the cells of /work/shared/CI-CONTAINERS.md that kiln must survive by
# degrading, and checks the advice where it cannot run at all.
#
# The containers run kiln's own image, built here by kiln from
# contrib/container/Containerfile on a Debian base made by debootstrap from the
# mirror apt uses (scripts/debian-base.sh, once per run; KILN_CONTAINERS_BASE=DIR
# reuses a layout it wrote). The image is built once and loaded into both.
# KILN_CONTAINERS_EXTRA=buildah adds buildah to the image and a buildah
# (chroot isolation, vfs) run after every kiln cell, for comparison.
#
# Skip it only explicitly: KILN_SKIP_CONTAINERS=1 (it needs root, runc,
# podman and Debian's docker.io: see scripts/deps.sh). Ends with
# "containers: N passed, M failed"; non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${KILN_SKIP_CONTAINERS:-}" = 1 ]; then
    echo "containers: SKIPPED (KILN_SKIP_CONTAINERS=1)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "test-containers.sh: run as root (it starts a private dockerd and switches to kilntest)" >&2
    exit 1
fi
bash scripts/testuser.sh >/dev/null
bash scripts/podman-user.sh kilntest
# KILN_CONTAINERS_BIN: test that kiln binary instead (e.g. an older one).
bin=${KILN_CONTAINERS_BIN:-target/release/kiln}
[ -n "${KILN_CONTAINERS_BIN:-}" ] || cargo build --release --quiet --bin kiln

w=$(mktemp -d /tmp/kiln-ctr.XXXXXX)
chmod 755 "$w"
dockerd_pid=
cleanup() {
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
    # dockerd's overlay and netns mounts, if it left any.
    grep -o " $w/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$w"
}
trap cleanup EXIT

# The private dockerd starts while the base and the image are built.
mkdir -p "$w/docker" "$w/dx"
dockerd --iptables=false --ip6tables=false --bridge=none --data-root "$w/docker" \
    --exec-root "$w/dx" --pidfile "$w/docker.pid" -H "unix://$w/docker.sock" \
    >"$w/dockerd.log" 2>&1 &
dockerd_pid=$!
docker() { /usr/bin/docker -H "unix://$w/docker.sock" "$@"; }

img=localhost/kiln-ci:latest
t0=$SECONDS
base=${KILN_CONTAINERS_BASE:-$w/debian}
[ -f "$base/index.json" ] || scripts/debian-base.sh "$base" bookworm >/dev/null
t_base=$((SECONDS - t0))
mkdir -p "$w/kbin"
strip -o "$w/kbin/kiln" "$bin"
"$bin" --root "$w/kstore" build --progress quiet -t kiln-ci:latest \
    --build-context "debian:bookworm-slim=oci-layout://$base:bookworm" \
    --build-context "kiln-bin=$w/kbin" --build-arg "EXTRA_PACKAGES=${KILN_CONTAINERS_EXTRA:-}" \
    -o "type=docker,dest=$w/kiln-ci.tar" contrib/container >"$w/image.log" 2>&1 ||
    { cat "$w/image.log"; exit 1; }
rm -rf "$w/kstore"
chmod 644 "$w/kiln-ci.tar"
echo "containers: base $t_base s, kiln image $((SECONDS - t0 - t_base)) s"

mkdir -p "$w/ctx"
scripts/busybox-image.sh "$w/base" >/dev/null
chmod -R a+rX "$w/base"
echo file > "$w/ctx/f"
cat >"$w/ctx/Dockerfile" <<'DF'
FROM oci:/base:latest AS a
RUN echo one > /one && hostname > /host
COPY f /f
FROM oci:/base:latest
COPY --from=a /one /f /
RUN cat /one /f && grep CapEff /proc/self/status
# Whatever /proc shows, no process outside the step opens the container's
# root to it (/usr/local/bin/kiln exists only there).
RUN ! ls -d /proc/[0-9]*/root/usr/local/bin/kiln 2>/dev/null
DF
# --isolation chroot gives a step no /proc (nothing can be mounted): the
# same build without the lines that read it, deleting a file instead.
sed -e 's# && grep CapEff /proc/self/status$# \&\& rm /etc/group#' "$w/ctx/Dockerfile" |
    head -n -3 >"$w/ctx/Dockerfile.chroot"
# buildah's chroot isolation shares the job's pid namespace, so it would
# fail the last step by design: the comparison leaves it out.
head -n -3 "$w/ctx/Dockerfile" >"$w/ctx/Dockerfile.buildah"
chmod -R a+rX "$w/ctx"
: >"$w/nosubid"
echo 'builder:2000:60000' >"$w/subid"
chmod 644 "$w/subid" "$w/nosubid"

passed=0
failed=0
# cell NAME ok|fail PATTERN... -- COMMAND...: run COMMAND (a container),
# expect its exit status, and every PATTERN (grep -E) in its output.
cell() {
    local name=$1 want=$2
    shift 2
    local pats=()
    while [ "$1" != -- ]; do pats+=("$1"); shift; done
    shift
    local start=$SECONDS out rc=0
    out=$("$@" 2>&1) || rc=$?
    local why=
    if [ "$want" = ok ] && [ "$rc" -ne 0 ]; then why="exit $rc, expected 0"; fi
    if [ "$want" = fail ] && [ "$rc" -eq 0 ]; then why="exit 0, expected a failure"; fi
    local pat
    for pat in "${pats[@]}"; do
        grep -Eq -- "$pat" <<<"$out" || why="$why${why:+; }no match for: $pat"
    done
    if [ -z "$why" ]; then
        passed=$((passed + 1))
        echo "ok   $name ($((SECONDS - start)) s)"
        # KILN_CONTAINERS_VERBOSE=1 shows what kiln said in passing cells too.
        if [ -n "${KILN_CONTAINERS_VERBOSE:-}" ]; then sed 's/^/    | /' <<<"$out"; fi
    else
        failed=$((failed + 1))
        echo "FAIL $name: $why"
        sed 's/^/    | /' <<<"$out"
    fi
    # The same container settings for buildah, reported, never counted.
    if [ -n "${KILN_CONTAINERS_EXTRA:-}" ] && [ -z "${KILN_ONLY:-}" ]; then
        local bout brc=0
        bout=$(BUILDER=buildah "$@" 2>&1) || brc=$?
        if [ "$brc" -eq 0 ]; then echo "     buildah: OK"; else echo "     buildah: FAIL $(grep -E 'level=error|^Error|error:' <<<"$bout" | head -1)"; fi
    fi
}

# The build in the image's default store (KILN_ROOT, its declared volume)
# unless ROOT is given, exported as files whose content the cell checks.
build() {
    if [ "${BUILDER:-}" = buildah ]; then
        echo "buildah bud --isolation chroot --storage-driver vfs -q -f /ctx/Dockerfile.buildah -t ci /ctx && echo 'out: one file'"
        return
    fi
    echo "kiln ${ROOT:+--root $ROOT} build ${KARGS:-} --progress plain -t ci -o type=local,dest=/tmp/out /ctx &&
        echo \"out: \$(cat /tmp/out/one /tmp/out/f | tr '\n' ' ')\""
}
built='^out: one file $'

# ---- rootless podman, as kilntest (container root = kilntest) ----
# podman's own state here: kilntest's default one remembers the run root of
# another run's TMPDIR, where conmon then times out (20 s) at every exit.
# Native rootless overlay: vfs would copy the whole image at every run
# (15 s a cell instead of 1).
install -d -o kilntest "$w/pstate"
podman_() {
    (cd / && runuser -u kilntest -- podman --root "$w/pstate/root" --runroot "$w/pstate/run" \
        --tmpdir "$w/pstate/tmp" --storage-driver overlay "$@")
}
t0=$SECONDS
podman_ load -q -i "$w/kiln-ci.tar" >/dev/null
echo "containers: podman load $((SECONDS - t0)) s"
prun() {
    local args=()
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    podman_ run --rm -v "$w/base:/base:ro" -v "$w/ctx:/ctx:ro" "${args[@]}" \
        --entrypoint /bin/sh "$img" -c "$(build)"
}
# The image's builder range (100000) lies outside rootless podman's own
# mapping (0..65536): newuidmap is refused, kiln maps only the builder.
cell "podman defaults, builder (range unmapped: single-id map; sethostname refused)" ok \
    "$built" 'falling back to a single-id mapping' 'sethostname is refused' -- \
    prun --
cell "podman defaults, builder, range inside podman's map (newuidmap refused)" ok \
    "$built" 'falling back to a single-id mapping' -- \
    prun -v "$w/subid:/etc/subuid:ro" -v "$w/subid:/etc/subgid:ro" --
cell "podman defaults, builder, no subuid range" ok \
    "$built" -- \
    prun -v "$w/nosubid:/etc/subuid:ro" -v "$w/nosubid:/etc/subgid:ro" --
cell "podman defaults, root (no CAP_SYS_ADMIN: a user namespace of its own)" ok \
    "$built" 'CapEff:.*a80425fb' -- \
    prun --user root --
# Masks made in the container's own user namespace do not stop a fresh
# procfs there: no fallback needed, caps clipped to podman's set.
cell "podman SYS_ADMIN, root (no user namespace of kiln's; caps clipped)" ok \
    "$built" 'CapEff:.*800405fb' 'lacks CAP_NET_RAW, CAP_MKNOD, CAP_AUDIT_WRITE' -- \
    prun --user root --cap-add SYS_ADMIN --

# ---- docker (rootful, private daemon) ----
t0=$SECONDS
for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
docker load -q -i "$w/kiln-ci.tar" >/dev/null
echo "containers: docker load $((SECONDS - t0)) s"
# The image's VOLUME gives the store a real filesystem (an anonymous volume,
# removed with the container).
drun() {
    local args=()
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    docker run --rm --network host -v "$w/base:/base:ro" -v "$w/ctx:/ctx:ro" "${args[@]}" \
        --entrypoint /bin/sh "$img" -c "$(build)"
}
# The flags of docs/ci: the recipes must say exactly these.
unconfined=(--security-opt seccomp=unconfined)
cell "docker seccomp=unconfined, builder (newuidmap refused: single-id map; masked /proc: bind)" ok \
    "$built" 'falling back to a single-id mapping' 'cannot mount a fresh /proc' -- \
    drun "${unconfined[@]}" --
cell "docker seccomp=unconfined, root (no CAP_SYS_ADMIN: own user namespace)" ok \
    "$built" 'CapEff:.*a80425fb' -- \
    drun --user root "${unconfined[@]}" --
cell "docker SYS_ADMIN + seccomp=unconfined + --cap-drop NET_RAW, root (caps clipped)" ok \
    "$built" 'lacks CAP_NET_RAW' 'CapEff:.*a80405fb' -- \
    drun --user root --cap-add SYS_ADMIN --cap-drop NET_RAW "${unconfined[@]}" --
cell "docker SYS_ADMIN, default seccomp, root (pivot_root refused: chroot, no CAP_SYS_CHROOT)" ok \
    "$built" 'pivot_root is refused' 'CapEff:.*a80025fb' -- \
    drun --user root --cap-add SYS_ADMIN --
ROOT=/tmp/store cell "docker seccomp=unconfined, store on the container's overlayfs (the volume advice)" fail \
    'is on overlayfs' 'on a volume' -- \
    drun "${unconfined[@]}" --
cell "docker defaults, builder (clone3 ENOSYS named as seccomp, the flags)" fail \
    'clone3 is refused by a seccomp filter' 'docker run --security-opt seccomp=unconfined' \
    'kiln build --isolation chroot' -- \
    drun --
cell "docker defaults, root (the flags, and --isolation chroot)" fail \
    'root without CAP_SYS_ADMIN' 'docker run --security-opt seccomp=unconfined' \
    'kiln build --isolation chroot' -- \
    drun --user root --
# ---- --isolation chroot (issue #20 item 2): Docker's defaults, root, no
# namespace and no mount: RUN chrooted into the stage's rootfs dir, layers
# from the snapshot diff. The image it exports runs in docker.
mkdir -p "$w/out"
chroot_args="--isolation chroot -f /ctx/Dockerfile.chroot -o type=docker,dest=/out/ci.tar"
KARGS=$chroot_args cell "docker defaults, root, --isolation chroot (the multi-stage build)" ok \
    "$built" 'WARNING: --isolation chroot' -- \
    drun --user root -v "$w/out:/out" --
run_chroot_image() {
    docker load -q -i "$w/out/ci.tar" >/dev/null &&
        docker run --rm --network host localhost/ci:latest \
            sh -c 'cat /one /f; test -e /etc/group || echo "group deleted"'
}
KILN_ONLY=1 cell "docker: the image --isolation chroot built runs" ok \
    '^one$' '^file$' '^group deleted$' -- run_chroot_image
# Not root: no CAP_SYS_CHROOT, so nothing is left to run a step with.
KARGS=$chroot_args cell "docker defaults, builder, --isolation chroot (needs root: the message)" fail \
    'needs CAP_SYS_CHROOT: run kiln as root in the container' -- \
    drun -v "$w/out:/out" --
# No overlay mount: the container's own overlayfs is a usable store (its
# whiteouts are xwhiteouts).
ROOT=/tmp/store KARGS=$chroot_args cell "docker defaults, root, --isolation chroot, store on the container's overlayfs" ok \
    "$built" -- \
    drun --user root -v "$w/out:/out" --
# A base whose top layer deletes a file (the image above): overlayfs
# refuses its 0:0 whiteout, the store keeps an xwhiteout.
printf 'FROM docker-archive:/out/ci.tar\nRUN test ! -e /etc/group && cat /one\n' >"$w/out/Dockerfile.wh"
KILN_ONLY=1 cell "docker defaults, root, --isolation chroot, store on overlayfs, a base with a whiteout" ok \
    ' one$' -- \
    docker run --rm --network host --user root -v "$w/out:/out" --entrypoint /bin/sh "$img" -c \
    "kiln --root /tmp/store build --isolation chroot --progress plain -f /out/Dockerfile.wh /out"
# kiln info: the diagnosis on demand (the image's default command); it
# exits non-zero where kiln cannot build.
KILN_ONLY=1 cell "docker defaults, kiln info (the image's command: the diagnosis)" fail \
    'seccomp: +filter' 'docker run --security-opt seccomp=unconfined' -- \
    docker run --rm --network host "$img"

# ---- the parts of --isolation chroot that exist (issue #20 item 2), in
# docker defaults as root: a step gets chroot(2) and nothing else (no
# namespace, no mount), its layer comes from the snapshot diff on the
# container's own overlayfs (xwhiteouts). The comparison with the namespace
# sandbox needs namespaces: it runs in `cargo test` outside. The tests make
# their rootfs from /bin/busybox (busybox-static), lent by the host.
json=$(cargo test -p kiln-sandbox --test chroot --no-run --message-format=json 2>/dev/null)
ctest=$(grep -o '"executable":"[^"]*/deps/chroot-[0-9a-f]*"' <<<"$json" | head -1 | cut -d'"' -f4)
mkdir -p "$w/ctest"
cp "$ctest" "$w/ctest/chroot-tests"
chmod -R a+rX "$w/ctest"
KILN_ONLY=1 cell "docker defaults, root: chroot executor + snapshot diff (no namespace, no mount)" ok \
    'the_layer_holds_the_steps_changes \.\.\. ok' \
    'runs_inside_the_rootfs_as_the_user_in_the_working_dir \.\.\. ok' 'test result: ok\. 3 passed' -- \
    docker run --rm --network host --user root -v "$w/ctest:/ctest:ro" \
    -v "$(readlink -f /bin/busybox):/usr/bin/busybox:ro" --entrypoint /ctest/chroot-tests \
    "$img" --skip same_layer --test-threads 1

# ---- the recipes: YAML parses, and says the flags the cells above use ----
KILN_ONLY=1 cell "docs/ci recipes parse and carry the tested flags" ok '^recipes ok$' -- \
    python3 scripts/check-ci-recipes.py "${unconfined[*]}"

echo "containers: $passed passed, $failed failed (total $SECONDS s)"
[ "$failed" -eq 0 ]
