#!/usr/bin/env bash
# Writes a small busybox base image as an OCI image layout, offline, from
# Debian's busybox-static: /bin/busybox, a symlink per applet, /etc/passwd
# and /etc/group (root, a "builder" user 1000, nobody 65534), /tmp, /root.
#
#   scripts/busybox-image.sh DIR [TAG [ARCH...]]   (TAG defaults to "latest",
#                                                   ARCH to the host's)
#
# ARCH is an OCI architecture (amd64, arm64…). A foreign one takes busybox
# from Debian's busybox-static:ARCH package (`dpkg --add-architecture ARCH`
# first; the .deb is downloaded once into $KILN_DEB_CACHE, default
# /var/cache/kiln-test). Several ARCHs write one image index under TAG
# holding an image per platform (what `skopeo copy --all` writes).
#
# The layer tar is sorted, owned 0:0 with mtime 0 and gzip -n, so the image
# digests only change when the busybox binary does. Use it as
# `FROM oci:DIR:TAG` (kiln, buildah) or `skopeo copy oci:DIR:TAG …`.
set -euo pipefail

out=${1:?usage: busybox-image.sh DIR [TAG [ARCH...]]}
tag=${2:-latest}
shift $(($# < 2 ? $# : 2))
case "$(uname -m)" in
    x86_64) host=amd64 ;;
    aarch64) host=arm64 ;;
    *) host=$(uname -m) ;;
esac
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=("$host")
[ -x /bin/busybox ] || { echo "busybox-image.sh: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/blobs/sha256"

# Puts a file into the layout's blobs; prints its digest (hex) and size.
blob() {
    local d
    d=$(sha256sum "$1" | cut -d' ' -f1)
    cp "$1" "$out/blobs/sha256/$d"
    echo "$d $(stat -c %s "$1")"
}

# The busybox binary of an architecture.
busybox_of() {
    local arch=$1
    if [ "$arch" = "$host" ]; then
        echo /bin/busybox
        return
    fi
    local cache=${KILN_DEB_CACHE:-/var/cache/kiln-test}
    local deb
    deb=$(ls "$cache"/busybox-static_*_"$arch".deb 2>/dev/null | head -1 || true)
    if [ -z "$deb" ]; then
        mkdir -p "$cache"
        (cd "$cache" && apt-get download -q "busybox-static:$arch" >&2) || {
            echo "busybox-image.sh: cannot download busybox-static:$arch (as root: dpkg --add-architecture $arch && apt-get update)" >&2
            exit 1
        }
        deb=$(ls "$cache"/busybox-static_*_"$arch".deb | head -1)
    fi
    mkdir -p "$work/deb-$arch"
    dpkg-deb -x "$deb" "$work/deb-$arch"
    echo "$work/deb-$arch/bin/busybox"
}

# Writes one platform's image; prints its manifest's digest and size.
image() {
    local arch=$1 busybox rootfs=$work/rootfs-$1
    busybox=$(busybox_of "$arch")
    mkdir -p "$rootfs"/{bin,dev,etc,proc,sys,tmp,root,home/builder,usr/bin,usr/sbin,sbin,var}
    chmod 1777 "$rootfs/tmp"
    chmod 0700 "$rootfs/root"
    cp "$busybox" "$rootfs/bin/busybox"
    # The host's busybox lists the applets: a foreign one may not run here,
    # and Debian builds both from one source with one config.
    /bin/busybox --list-full | while read -r applet; do
        [ "$applet" = bin/busybox ] && continue
        mkdir -p "$rootfs/$(dirname "$applet")"
        ln -sf /bin/busybox "$rootfs/$applet"
    done
    cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
builder:x:1000:1000:builder:/home/builder:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
    cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
builder:x:1000:
nogroup:x:65534:
GROUP
    local tarf=$work/layer-$arch.tar
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -C "$rootfs" -cf "$tarf" .
    local diff_id layer_digest layer_size
    diff_id=$(sha256sum "$tarf" | cut -d' ' -f1)
    gzip -n -c "$tarf" >"$tarf.gz"
    read -r layer_digest layer_size < <(blob "$tarf.gz")

    local config=$work/config-$arch.json config_digest config_size
    printf '%s' '{"architecture":"'"$arch"'","os":"linux","created":"1970-01-01T00:00:00Z",'\
'"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},'\
'"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]},'\
'"history":[{"created":"1970-01-01T00:00:00Z","created_by":"busybox-image.sh: busybox-static rootfs"}]}' >"$config"
    read -r config_digest config_size < <(blob "$config")

    local manifest=$work/manifest-$arch.json
    printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'\
'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config_digest"'","size":'"$config_size"'},'\
'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$layer_digest"'","size":'"$layer_size"'}]}' >"$manifest"
    blob "$manifest"
}

printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
ref='"annotations":{"org.opencontainers.image.ref.name":"'"$tag"'"}'
if [ ${#arches[@]} -eq 1 ]; then
    read -r digest size < <(image "${arches[0]}")
    printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$digest"'","size":'"$size"','"$ref"'}]}' >"$out/index.json"
else
    entries=()
    for arch in "${arches[@]}"; do
        read -r d s < <(image "$arch")
        entries+=('{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$d"'","size":'"$s"',"platform":{"architecture":"'"$arch"'","os":"linux"}}')
    done
    list=$work/index-list.json
    (IFS=,; printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['"${entries[*]}"']}') >"$list"
    read -r digest size < <(blob "$list")
    printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:'"$digest"'","size":'"$size"','"$ref"'}]}' >"$out/index.json"
fi
echo "busybox-image.sh: $out:$tag (${arches[*]}; sha256:$digest)"
