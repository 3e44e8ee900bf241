#!/usr/bin/env bash
# Prepare this machine for the sandbox tests (run as root; idempotent):
#  - packages: uidmap (newuidmap/newgidmap), busybox-static (test rootfs)
#  - user kilntest with a home and a subordinate uid/gid range of 65536 ids
#    (useradd's automatic one, else the first free range: /etc/subuid, /etc/subgid)
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

# Before the users: useradd gives a new user a subordinate range only
# when /etc/subuid exists.
touch /etc/subuid /etc/subgid
add_user() {
    id -u "$1" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$1"
}
add_user kilntest
add_user kilnnorange

# useradd's range is SUB_UID_MIN.. of login.defs; an older user, or an older shadow, has none: give it the
# first 65536 ids past every range already given (in either file), so no
# two users share ids.
has_range() { grep -q "^kilntest:\|^$(id -u kilntest):" "$1"; }
if ! has_range /etc/subuid || ! has_range /etc/subgid; then
    start=$(awk -F: 'BEGIN { e = 100000 } NF == 3 && $2 + $3 > e { e = $2 + $3 } END { print e }' \
        /etc/subuid /etc/subgid)
    range="$start-$((start + 65535))"
    has_range /etc/subuid || usermod --add-subuids "$range" kilntest
    has_range /etc/subgid || usermod --add-subgids "$range" kilntest
fi
for f in /etc/subuid /etc/subgid; do
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
