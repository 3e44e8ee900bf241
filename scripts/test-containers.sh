#!/usr/bin/env bash
# kiln inside CI containers (issue #20): builds a two-stage Dockerfile with
# kiln running inside rootless podman (as the test user kilntest) and inside
# a private dockerd (Debian's docker.io, own data/exec roots, no bridge), in
# the cells of /work/shared/CI-CONTAINERS.md that kiln must survive by
# degrading, and checks the advice where it cannot run at all.
#
# The container's rootfs is a skeleton (passwd, group, symlinks to /usr)
# with the host's /usr bound read-only: kiln's runtime needs (libc, newuidmap,
# pasta) come from the host, and nothing is downloaded.
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

# The private dockerd starts while the podman cells run.
mkdir -p "$w/docker" "$w/dx"
dockerd --iptables=false --ip6tables=false --bridge=none --data-root "$w/docker" \
    --exec-root "$w/dx" --pidfile "$w/docker.pid" -H "unix://$w/docker.sock" \
    >"$w/dockerd.log" 2>&1 &
dockerd_pid=$!
docker() { /usr/bin/docker -H "unix://$w/docker.sock" "$@"; }

mkdir -p "$w/bin" "$w/ctx"
cp "$bin" "$w/bin/kiln"
scripts/busybox-image.sh "$w/base" >/dev/null
chmod -R a+rX "$w/bin" "$w/base"
echo file > "$w/ctx/f"
cat >"$w/ctx/Dockerfile" <<'EOF'
FROM oci:/base:latest AS a
RUN echo one > /one && hostname > /host
COPY f /f
FROM oci:/base:latest
COPY --from=a /one /f /
RUN cat /one /f && grep CapEff /proc/self/status
# Whatever /proc shows, no process outside the step opens the container's
# root to it (/kiln/kiln exists only there).
RUN ! ls -d /proc/[0-9]*/root/kiln/kiln 2>/dev/null
EOF
chmod -R a+rX "$w/ctx"

# The skeleton rootfs: root and builder (1000), the host's /usr layout.
skel=$w/skel
mkdir -p "$skel"/{usr,etc,proc,sys,dev,tmp,root,run,kiln,base,ctx,store,home/builder}
for l in bin sbin lib lib64; do ln -s "usr/$l" "$skel/$l"; done
chmod 1777 "$skel/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000::/home/builder:/bin/sh\n' >"$skel/etc/passwd"
printf 'root:x:0:\nbuilder:x:1000:\n' >"$skel/etc/group"
: >"$skel/etc/subuid"
: >"$skel/etc/subgid"
echo 'builder:2000:60000' >"$w/subid"
chmod 644 "$w/subid"

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
}

# The build, with a store of its own per cell (/store/NAME).
build() { echo "/kiln/kiln --root /store/$1 build --progress plain -t ci /ctx"; }

# ---- rootless podman, as kilntest (container root = kilntest) ----
p=$w/p
cp -a "$skel" "$p"
chown -R kilntest: "$p"
chmod 755 "$p"
runuser -u kilntest -- podman unshare chown -R 1000:1000 "$p/home/builder" "$p/store"
# podman's own state here: kilntest's default one remembers the run root of
# another run's TMPDIR, where conmon then times out (20 s) at every exit.
install -d -o kilntest "$w/pstate"
prun() {
    (cd / && runuser -u kilntest -- podman --root "$w/pstate/root" --runroot "$w/pstate/run" \
        --tmpdir "$w/pstate/tmp" run --rm --rootfs -v /usr:/usr:ro \
        -v "$w/bin:/kiln:ro" -v "$w/base:/base:ro" -v "$w/ctx:/ctx:ro" "$@")
}
cell "podman defaults, non-root, no subuid range (sethostname refused)" ok \
    '[0-9] one$' 'sethostname is refused' -- \
    prun --user 1000:1000 -e HOME=/home/builder "$p" /bin/sh -c "$(build p1)"
cell "podman defaults, non-root, subuid range (newuidmap refused: single-id map)" ok \
    '[0-9] one$' 'falling back to a single-id mapping' -- \
    prun --user 1000:1000 -e HOME=/home/builder -v "$w/subid:/etc/subuid:ro" \
    -v "$w/subid:/etc/subgid:ro" "$p" /bin/sh -c "$(build p2)"
cell "podman defaults, root (no CAP_SYS_ADMIN: a user namespace of its own)" ok \
    '[0-9] one$' 'CapEff:.*a80425fb' -- \
    prun "$p" /bin/sh -c "$(build p3)"
# Masks made in the container's own user namespace do not stop a fresh
# procfs there: no fallback needed, caps clipped to podman's set.
cell "podman SYS_ADMIN, root (no user namespace of kiln's; caps clipped)" ok \
    '[0-9] one$' 'CapEff:.*800405fb' 'lacks CAP_NET_RAW, CAP_MKNOD, CAP_AUDIT_WRITE' -- \
    prun --cap-add SYS_ADMIN "$p" /bin/sh -c "$(build p4)"

# ---- docker (rootful, private daemon), store on a volume unless said ----
for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
tar -C "$skel" -c . | docker import - kiln-skel >/dev/null
drun() {
    local vol
    vol=$(mktemp -d "$w/vol.XXXXXX")
    chown 1000:1000 "$vol"
    docker run --rm --network host -v /usr:/usr:ro -v "$w/bin:/kiln:ro" -v "$w/base:/base:ro" \
        -v "$w/ctx:/ctx:ro" -v "$vol:/store" "$@"
}
cell "docker seccomp=unconfined, non-root, no range (masked /proc: bind fallback)" ok \
    '[0-9] one$' 'cannot mount a fresh /proc' -- \
    drun --user 1000:1000 -e HOME=/home/builder --security-opt seccomp=unconfined \
    kiln-skel /bin/sh -c "$(build s)"
cell "docker seccomp=unconfined, root (no CAP_SYS_ADMIN: own user namespace)" ok \
    '[0-9] one$' -- \
    drun --security-opt seccomp=unconfined kiln-skel /bin/sh -c "$(build s)"
cell "docker SYS_ADMIN + seccomp=unconfined + --cap-drop NET_RAW, root (caps clipped)" ok \
    '[0-9] one$' 'lacks CAP_NET_RAW' 'CapEff:.*a80405fb' -- \
    drun --cap-add SYS_ADMIN --cap-drop NET_RAW --security-opt seccomp=unconfined \
    kiln-skel /bin/sh -c "$(build s)"
cell "docker SYS_ADMIN, default seccomp, root (pivot_root refused: chroot, no CAP_SYS_CHROOT)" ok \
    '[0-9] one$' 'pivot_root is refused' 'CapEff:.*a80025fb' -- \
    drun --cap-add SYS_ADMIN kiln-skel /bin/sh -c "$(build s)"
cell "docker, store on the container's overlayfs (the volume advice, at once)" fail \
    'is on overlayfs' 'on a volume' -- \
    drun --cap-add SYS_ADMIN --security-opt seccomp=unconfined kiln-skel \
    /kiln/kiln --root /var/lib/kiln build -t ci /ctx
cell "docker defaults, non-root (clone3 ENOSYS named as seccomp, the flags)" fail \
    'clone3 is refused by a seccomp filter' 'docker run --security-opt seccomp=unconfined' \
    'seccomp: +filter' -- \
    drun --user 1000:1000 -e HOME=/home/builder kiln-skel \
    /bin/sh -c "/kiln/kiln info; $(build s)"
cell "docker defaults, root (the flags)" fail \
    'root without CAP_SYS_ADMIN' 'docker run --security-opt seccomp=unconfined' -- \
    drun kiln-skel /bin/sh -c "$(build s)"

# ---- the parts of --isolation chroot that exist (issue #20 item 2), in
# docker defaults as root: a step gets chroot(2) and nothing else (no
# namespace, no mount), its layer comes from the snapshot diff on the
# container's own overlayfs (xwhiteouts). The comparison with the namespace
# sandbox needs namespaces: it runs in `cargo test` outside.
json=$(cargo test -p kiln-sandbox --test chroot --no-run --message-format=json 2>/dev/null)
ctest=$(grep -o '"executable":"[^"]*/chroot-[^"]*"' <<<"$json" | head -1 | cut -d'"' -f4)
cp "$ctest" "$w/bin/chroot-tests"
chmod 755 "$w/bin/chroot-tests"
cell "docker defaults, root: chroot executor + snapshot diff (no namespace, no mount)" ok \
    'the_layer_holds_the_steps_changes \.\.\. ok' \
    'runs_inside_the_rootfs_as_the_user_in_the_working_dir \.\.\. ok' 'test result: ok\. 3 passed' -- \
    drun kiln-skel /kiln/chroot-tests --skip same_layer --test-threads 1

echo "containers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
