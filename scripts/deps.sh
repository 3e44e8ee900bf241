#!/usr/bin/env bash
# Installs the system packages kiln's build and tests need, on Debian.
# Idempotent: packages already present are not touched, and apt's index is
# only refreshed when something is missing.
set -euo pipefail

# podman, skopeo, umoci and runc prove built images the way users consume them;
# docker-registry (distribution 2.8) and htpasswd serve the registry tests;
# git serves and fetches the ADD-from-git tests (and ADD of git URLs needs it);
# time (GNU time) measures kiln's peak memory in the hostile-server and scale tests;
# passt's pasta gives RUN its private network (without it kiln warns and uses the host's);
# man-db renders the man pages `kiln man` writes (tests/commands.rs);
# docker.io runs the private dockerd of scripts/test-containers.sh (kiln inside containers);
# debootstrap writes the Debian base of kiln's own image in scripts/test-containers.sh;
# openssh-client's ssh-agent/ssh-add serve the --ssh tests; bsdutils' script(1)
# gives the live-view tests a terminal.
packages=(gcc pkg-config ca-certificates uidmap busybox-static util-linux file
    podman skopeo umoci runc docker-registry apache2-utils git time passt man-db docker.io
    openssh-client bsdutils debootstrap)
# pigz and zstd: the floors of scripts/bench.sh's export-big case.
packages+=(pigz zstd)
# qemu-user-static + binfmt-support: foreign-platform RUN steps (--platform
# linux/arm64) through binfmt_misc handlers registered with the F flag.
packages+=(qemu-user-static binfmt-support)
# strace counts the syscalls a capture makes per file (tests/many_files.rs).
packages+=(strace)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi
# binfmt_misc is not mounted at boot here: mount it and enable the aarch64
# handler (tests/platform.rs builds linux/arm64); arm64 packages give the
# arm64 busybox base (scripts/busybox-image.sh DIR TAG arm64).
if [ "$(id -u)" -eq 0 ]; then
    if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        update-binfmts --enable qemu-aarch64
    fi
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64
        apt-get update -qq
    fi
fi
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install a Rust toolchain (https://rustup.rs or Debian's cargo package)" >&2
    exit 1
fi
