//! Which ids kiln's user namespace maps, and writing those maps.
//!
//! Three plans, from the most ids to the fewest:
//! * a user with a subordinate range: newuidmap/newgidmap map id 0 to the
//!   user and 1..=65536 to the range;
//! * root without CAP_SYS_ADMIN (inside a container): root writes the maps
//!   itself (it holds CAP_SETUID/CAP_SETGID over its own namespace), 0..N
//!   onto the ids its namespace has;
//! * otherwise, or when newuidmap is refused (a container without
//!   CAP_SYS_ADMIN caps the setuid helper), only id 0, mapped onto the
//!   caller by the caller itself.

use std::process::Command;

use crate::error::Error;
use crate::userns::{IdRange, WANTED_IDS};

/// One plan of id maps for the namespace child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// newuidmap/newgidmap: 0 → the caller, 1.. → the subordinate ranges.
    Sub {
        uid: u32,
        gid: u32,
        subuid: IdRange,
        subgid: IdRange,
    },
    /// Root maps ids 0.. of its own namespace onto themselves, one line
    /// per line of its own map (a line of the new map may not span two
    /// lines of its parent's): `(first id, count)` for uids, then gids.
    Own {
        uids: Vec<(u64, u64)>,
        gids: Vec<(u64, u64)>,
    },
    /// Only id 0, onto the caller.
    Single { uid: u32, gid: u32 },
}

/// A map write the kernel or a helper refused (the plan may be retried
/// with fewer ids).
pub(crate) struct Refused(pub Error);

impl Plan {
    /// Root's plan: every id its own namespace maps from 0 up.
    pub(crate) fn own() -> Plan {
        let lines = |f: &str| contiguous_from_zero(&std::fs::read_to_string(f).unwrap_or_default());
        Plan::Own {
            uids: lines("/proc/self/uid_map"),
            gids: lines("/proc/self/gid_map"),
        }
    }

    /// Write the maps of the (stopped) child `pid`.
    pub(crate) fn write(&self, pid: i32) -> std::result::Result<(), Refused> {
        let w = |f: &str, s: String| {
            std::fs::write(format!("/proc/{pid}/{f}"), s)
                .map_err(|e| Refused(Error::UserNs(format!("write /proc/{pid}/{f}: {e}"))))
        };
        match self {
            &Plan::Sub {
                uid,
                gid,
                subuid,
                subgid,
            } => {
                for (tool, id, r) in [("newuidmap", uid, subuid), ("newgidmap", gid, subgid)] {
                    let out = Command::new(tool)
                        .args([pid.to_string(), "0".into(), id.to_string(), "1".into()])
                        .args(["1".to_string(), r.start.to_string(), r.count.to_string()])
                        .output()
                        .map_err(|e| {
                            Refused(Error::UserNs(format!("run {tool} (package uidmap): {e}")))
                        })?;
                    if !out.status.success() {
                        return Err(Refused(Error::UserNs(format!(
                            "{tool} failed: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ))));
                    }
                }
            }
            // Root holds CAP_SETGID over the parent namespace: setgroups
            // stays allowed.
            Plan::Own { uids, gids } => {
                let map = |lines: &[(u64, u64)]| -> String {
                    lines
                        .iter()
                        .map(|(a, n)| format!("{a} {a} {n}\n"))
                        .collect()
                };
                w("uid_map", map(uids))?;
                w("gid_map", map(gids))?;
            }
            &Plan::Single { uid, gid } => {
                // An unprivileged process may map its own ids, once
                // setgroups is denied.
                w("setgroups", "deny".into())?;
                w("uid_map", format!("0 {uid} 1\n"))?;
                w("gid_map", format!("0 {gid} 1\n"))?;
            }
        }
        Ok(())
    }
}

/// The ids mapped beyond container id 0, read from an id map of this
/// process: the range holding id 1.
pub(crate) fn beyond_root(map: &str) -> Option<IdRange> {
    range_of_one(&std::fs::read_to_string(map).ok()?)
}

/// The `inside outside count` lines of an id map.
fn map_lines(map: &str) -> Vec<(u64, u64, u64)> {
    map.lines()
        .filter_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            match f[..] {
                [a, b, c] => Some((a, b, c)),
                _ => None,
            }
        })
        .collect()
}

fn range_of_one(map: &str) -> Option<IdRange> {
    map_lines(map)
        .into_iter()
        .find(|&(inside, _, count)| inside <= 1 && inside + count > 1)
        .map(|(inside, outside, count)| IdRange {
            start: (outside + 1 - inside) as u32,
            count: (inside + count - 1).min(u64::from(WANTED_IDS)) as u32,
        })
}

/// The lines of a user namespace's id map that cover ids 0.. without a gap,
/// as `(first id, count)`, cut at 1 + [`WANTED_IDS`] ids in all (empty
/// when id 0 is not mapped).
fn contiguous_from_zero(map: &str) -> Vec<(u64, u64)> {
    let mut lines = map_lines(map);
    lines.sort();
    let limit = u64::from(WANTED_IDS) + 1;
    let mut out = Vec::new();
    let mut next = 0u64;
    for (inside, _, count) in lines {
        if inside == next && next < limit {
            let n = count.min(limit - next);
            out.push((inside, n));
            next += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_beyond_root_comes_from_the_map() {
        // newuidmap's two lines, root's own map, a single id.
        assert_eq!(
            range_of_one("0 1000 1\n1 100000 65536\n"),
            Some(IdRange {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            range_of_one("0 0 65537\n"),
            Some(IdRange {
                start: 1,
                count: 65536
            })
        );
        assert_eq!(range_of_one("0 1000 1\n"), None);
    }

    #[test]
    fn root_maps_only_the_ids_it_has_from_zero() {
        assert_eq!(
            contiguous_from_zero("0 0 4294967295\n"),
            [(0, u64::from(WANTED_IDS) + 1)]
        );
        // Rootless podman's container: 0 → the user, 1..65536 → its range;
        // kept as two lines (a line may not span two of the parent's).
        assert_eq!(
            contiguous_from_zero("1 100000 65536\n0 1000 1\n"),
            [(0, 1), (1, 65536)]
        );
        assert_eq!(contiguous_from_zero("0 1000 1\n5 200 3\n"), [(0, 1)]);
        assert!(contiguous_from_zero("").is_empty());
    }
}
