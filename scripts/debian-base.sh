#!/usr/bin/env bash
# Writes a Debian base image as an OCI image layout, from the Debian mirror
# apt uses, for building kiln's own image (contrib/container/Containerfile)
# where no registry serves debian:bookworm-slim:
#
#   scripts/debian-base.sh DIR [SUITE] [MIRROR]    (bookworm, deb.debian.org)
#
# debootstrap --variant=minbase (about the content of debian:*-slim) straight
# into an umoci bundle, repacked as one layer. Takes a couple of minutes
# (mostly downloads): callers build it once and reuse DIR. Needs root.
# Use it as --build-context debian:bookworm-slim=oci-layout://DIR:SUITE.
set -euo pipefail

out=${1:?usage: debian-base.sh DIR [SUITE] [MIRROR]}
suite=${2:-bookworm}
mirror=${3:-http://deb.debian.org/debian}
for t in debootstrap umoci; do
    command -v "$t" >/dev/null || { echo "debian-base.sh: $t missing (scripts/deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
umoci init --layout "$out"
umoci new --image "$out:$suite"
umoci unpack --image "$out:$suite" "$work/bundle"
debootstrap --variant=minbase "$suite" "$work/bundle/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
# What the slim images leave out too: the downloaded .debs and indexes.
rm -rf "$work/bundle/rootfs/var/cache/apt/archives/"*.deb "$work/bundle/rootfs/var/lib/apt/lists/"*
umoci repack --image "$out:$suite" "$work/bundle"
umoci config --image "$out:$suite" --config.cmd bash \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umoci gc --layout "$out"
echo "debian-base.sh: $out:$suite"
