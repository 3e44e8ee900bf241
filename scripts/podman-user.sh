#!/usr/bin/env bash
# Lets USER run rootless podman on this kind of host (see DESIGN.md, "Test
# fixtures"): crun refuses the cgroup v1 hybrid layout, so runc; no
# /dev/net/tun, so no network namespace setup; cgroupfs and file events
# because there is no systemd session. Idempotent; run as root.
#
#   scripts/podman-user.sh USER
set -euo pipefail
user=${1:?usage: podman-user.sh USER}
home=$(getent passwd "$user" | cut -d: -f6)
conf=$home/.config/containers
install -d -o "$user" -g "$user" "$home/.config" "$conf"
# Replaced by rename: a podman starting meanwhile never reads half a file.
cat >"$conf/containers.conf.tmp" <<'CONF'
[containers]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
chown "$user:" "$conf/containers.conf.tmp"
mv -f "$conf/containers.conf.tmp" "$conf/containers.conf"
