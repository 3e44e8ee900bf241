#!/usr/bin/env bash
# kiln's main job on examples/multistage: a two-stage Dockerfile (a builder
# stage makes an artefact, the final stage copies only that) built into an
# image that `podman load` takes. The base is a busybox image made offline
# from Debian's busybox-static (scripts/busybox-image.sh), so the example
# needs no network; real Dockerfiles name registry images, which kiln pulls
# (`FROM debian:12`, or `kiln pull`).
#
#   scripts/example.sh            → target/example/kiln-example.tar
#
# kiln is rootless: run as root, this script builds as the unprivileged
# user kilntest (made with a subuid range by scripts/testuser.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
echo "example.sh: building kiln (release; a first build takes minutes)" >&2
cargo build --release --bin kiln
out=$PWD/target/example
mkdir -p "$out"
scripts/busybox-image.sh "$out/busybox" >/dev/null

run=()
if [ "$(id -u)" -eq 0 ]; then
    bash scripts/testuser.sh >/dev/null
    bash scripts/podman-user.sh kilntest
    # The unprivileged user needs to reach the binary, the example and $out.
    stage=$(mktemp -d /tmp/kiln-example.XXXXXX)
    trap 'rm -rf "$stage"' EXIT
    cp target/release/kiln "$stage/kiln"
    cp -r examples/multistage "$stage/multistage"
    chmod -R a+rX "$stage" "$out/busybox"
    chown kilntest: "$out"
    run=(runuser -u kilntest -- env HOME=/home/kilntest)
    kiln=$stage/kiln
    context=$stage/multistage
else
    kiln=$PWD/target/release/kiln
    context=$PWD/examples/multistage
fi
rm -f "$out/kiln-example.tar"
(cd / && "${run[@]}" "$kiln" build \
    --build-arg "BASE=oci:$out/busybox:latest" \
    -t kiln-example \
    -o "type=docker,dest=$out/kiln-example.tar" \
    "$context")
as=""
[ "$(id -u)" -eq 0 ] && as="runuser -u kilntest -- "
cat <<MSG

Built $out/kiln-example.tar. Run it (rootless podman) with:
  ${as}podman load -i $out/kiln-example.tar && ${as}podman run --rm localhost/kiln-example
MSG
