#!/usr/bin/env bash
# kiln's main job on examples/multistage: a two-stage Dockerfile (a builder
# stage makes an artefact, the final stage copies only that) built into an
# image that `podman load` takes. The base is a busybox image made offline
# from Debian's busybox-static (scripts/busybox-image.sh); real Dockerfiles
# name registry images, which need the registry client (not yet in kiln).
#
#   scripts/example.sh            → target/example/kiln-example.tar
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --quiet --bin kiln
out=target/example
mkdir -p "$out"
scripts/busybox-image.sh "$out/busybox" >/dev/null
target/release/kiln build \
    --build-arg "BASE=oci:$PWD/$out/busybox:latest" \
    -t kiln-example \
    -o "type=docker,dest=$out/kiln-example.tar" \
    examples/multistage
cat <<MSG

Built $out/kiln-example.tar. Run it with:
  podman load -i $out/kiln-example.tar && podman run --rm localhost/kiln-example
MSG
