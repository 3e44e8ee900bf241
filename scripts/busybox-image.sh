#!/usr/bin/env bash
# Writes a small busybox base image as an OCI image layout, offline, from
# Debian's busybox-static: /bin/busybox, a symlink per applet, /etc/passwd
# and /etc/group (root, a "builder" user 1000, nobody 65534), /tmp, /root.
#
#   scripts/busybox-image.sh DIR [TAG]      (TAG defaults to "latest")
#
# The layer tar is sorted, owned 0:0 with mtime 0 and gzip -n, so the image
# digests only change when the busybox binary does. Use it as
# `FROM oci:DIR:TAG` (kiln, buildah) or `skopeo copy oci:DIR:TAG …`.
set -euo pipefail

out=${1:?usage: busybox-image.sh DIR [TAG]}
tag=${2:-latest}
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "busybox-image.sh: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }

case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,dev,etc,proc,sys,tmp,root,home/builder,usr/bin,usr/sbin,sbin,var}
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
cp "$busybox" "$rootfs/bin/busybox"
"$busybox" --list-full | while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$rootfs/$(dirname "$applet")"
    ln -sf /bin/busybox "$rootfs/$applet"
done
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
builder:x:1000:1000:builder:/home/builder:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
builder:x:1000:
nogroup:x:65534:
EOF

layer=$work/layer.tar.gz
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$rootfs" -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -c "$work/layer.tar" >"$layer"
layer_digest=$(sha256sum "$layer" | cut -d' ' -f1)
layer_size=$(stat -c %s "$layer")

config=$work/config.json
printf '%s' '{"architecture":"'"$arch"'","os":"linux","created":"1970-01-01T00:00:00Z",'\
'"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},'\
'"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]},'\
'"history":[{"created":"1970-01-01T00:00:00Z","created_by":"busybox-image.sh: busybox-static rootfs"}]}' >"$config"
config_digest=$(sha256sum "$config" | cut -d' ' -f1)
config_size=$(stat -c %s "$config")

manifest=$work/manifest.json
printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'\
'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config_digest"'","size":'"$config_size"'},'\
'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$layer_digest"'","size":'"$layer_size"'}]}' >"$manifest"
manifest_digest=$(sha256sum "$manifest" | cut -d' ' -f1)
manifest_size=$(stat -c %s "$manifest")

mkdir -p "$out/blobs/sha256"
cp "$layer" "$out/blobs/sha256/$layer_digest"
cp "$config" "$out/blobs/sha256/$config_digest"
cp "$manifest" "$out/blobs/sha256/$manifest_digest"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$manifest_digest"'","size":'"$manifest_size"',"annotations":{"org.opencontainers.image.ref.name":"'"$tag"'"}}]}' >"$out/index.json"
echo "busybox-image.sh: $out:$tag (manifest sha256:$manifest_digest)"
