#!/usr/bin/env bash
# Prepare this machine for the sandbox tests (run as root; idempotent):
#  - packages: uidmap (newuidmap/newgidmap), busybox-static (test rootfs)
#  - user kilntest with a home and subordinate ranges 200000:65536
#  - user kilnnorange with NO subordinate range (the no-range test)
#  - passt (pasta, RUN's private network) and a usable /dev/net/tun
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "testuser.sh: must run as root" >&2
    exit 1
fi

need=()
command -v newuidmap >/dev/null 2>&1 || need+=(uidmap)
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' \
    || need+=(busybox-static)
command -v file >/dev/null 2>&1 || need+=(file)
command -v pasta >/dev/null 2>&1 || need+=(passt)
if [ "${#need[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${need[@]}" >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi

add_user() {
    id -u "$1" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$1"
}
add_user kilntest
add_user kilnnorange

for f in /etc/subuid /etc/subgid; do
    touch "$f"
    grep -q '^kilntest:' "$f" || echo "kilntest:200000:65536" >>"$f"
    # kilnnorange must have no range, also not by uid.
    sed -i -e '/^kilnnorange:/d' -e "/^$(id -u kilnnorange):/d" "$f"
done

# Unprivileged user namespaces must be allowed (they are on the project kernel).
if [ -e /proc/sys/kernel/unprivileged_userns_clone ]; then
    echo 1 >/proc/sys/kernel/unprivileged_userns_clone || true
fi
# RUN's private network (pasta) opens /dev/net/tun as the test user:
# standard distros ship it 0666, this machine 0600.
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
    chmod 0666 /dev/net/tun
fi
echo "testuser.sh: kilntest ($(grep '^kilntest:' /etc/subuid)) and kilnnorange (no range) ready"
