//! Resolve a Dockerfile `USER` (`name`, `uid`, `name:group`, `uid:gid`) by
//! parsing the image's /etc/passwd and /etc/group as text. Never NSS: NSS
//! would load modules named by the untrusted rootfs into kiln's process.
//!
//! Semantics follow runc / moby's `GetExecUser`: a numeric user absent from
//! passwd runs with gid 0 and HOME `/`; an unknown name is an error; without
//! an explicit group the supplementary groups are every group that lists the
//! user as a member. The primary gid always heads the supplementary groups,
//! as containerd and BuildKit give since CVE-2023-25173: a process that
//! changes its gid must still be bound by restrictions on its primary group.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;

use crate::error::{Error, Result};

/// Largest /etc/passwd or /etc/group read: a bigger one is not an id file
/// but a way to make kiln allocate (a 2 GiB sparse passwd took 2.1 GB).
pub const MAX_ID_FILE: u64 = 4 << 20;

/// Reads an image's id file (`name` is its path in the image, for errors)
/// from `file`, which the caller opened inside the rootfs with
/// `O_NONBLOCK` (opening a FIFO then does not wait for a writer).
/// Anything but a regular file, or one over [`MAX_ID_FILE`], is an error
/// naming the file: a FIFO would block the read, a device never end it.
pub fn read_id_file(file: File, name: &str) -> std::io::Result<String> {
    let err = |what: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the image's {name} {what}"),
        )
    };
    let meta = file.metadata().map_err(|e| err(format!(": stat: {e}")))?;
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_fifo() {
            "a FIFO"
        } else if t.is_dir() {
            "a directory"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else {
            "a socket"
        };
        return Err(err(format!("is {kind}, not a regular file")));
    }
    if meta.len() > MAX_ID_FILE {
        return Err(err(format!(
            "is {} bytes, over the {} MiB an id file may have",
            meta.len(),
            MAX_ID_FILE >> 20
        )));
    }
    let mut text = Vec::new();
    // Bounded again: the file may grow after the stat.
    file.take(MAX_ID_FILE)
        .read_to_end(&mut text)
        .map_err(|e| err(format!(": read: {e}")))?;
    // Not UTF-8 lines are skipped by the parsers, as libc skips bad lines.
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// The ids and home the command runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Lines that do not parse are skipped, like libc does.
fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || line.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || line.starts_with('#') {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
        })
    })
}

/// Resolve `user` against the contents of /etc/passwd and /etc/group (empty
/// strings when the files are missing).
pub fn resolve(user: &str, passwd: &str, group: &str) -> Result<Resolved> {
    let err = |message: String| Error::User {
        user: user.to_string(),
        message,
    };
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let numeric_uid = user_part.parse::<u32>().ok();

    let entry = passwd_entries(passwd)
        .find(|e| e.name == user_part)
        .or_else(|| numeric_uid.and_then(|n| passwd_entries(passwd).find(|e| e.uid == n)));
    let (uid, mut gid, home, name) = match (entry, numeric_uid) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        (None, Some(n)) => (n, 0, "/".to_string(), None),
        (None, None) => {
            return Err(err(format!(
                "no user {user_part:?} in the image's /etc/passwd"
            )))
        }
    };

    let mut groups = Vec::new();
    match group_part {
        Some(g) if !g.is_empty() => {
            let numeric = g.parse::<u32>().ok();
            let found = group_entries(group)
                .find(|e| e.name == g)
                .or_else(|| numeric.and_then(|n| group_entries(group).find(|e| e.gid == n)));
            gid = match (found, numeric) {
                (Some(e), _) => e.gid,
                (None, Some(n)) => n,
                (None, None) => {
                    return Err(err(format!("no group {g:?} in the image's /etc/group")))
                }
            };
        }
        Some(_) => return Err(err("empty group after ':'".into())),
        None => {
            if let Some(name) = name {
                for e in group_entries(group) {
                    if e.members.contains(&name) && !groups.contains(&e.gid) {
                        groups.push(e.gid);
                    }
                }
            }
        }
    }
    if !groups.contains(&gid) {
        groups.insert(0, gid);
    }
    Ok(Resolved {
        uid,
        gid,
        groups,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        broken line\n\
        app:x:1000:1001:App:/home/app:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\n\
        wheel:x:10:root,app\n\
        app:x:1001:\n\
        audio:x:29:app\n\
        nogroup:x:65534:\n";

    fn r(u: &str) -> Result<Resolved> {
        resolve(u, PASSWD, GROUP)
    }

    #[test]
    fn empty_user_is_root_with_member_groups() {
        let x = r("").unwrap();
        assert_eq!(
            (x.uid, x.gid, x.groups, x.home.as_str()),
            (0, 0, vec![0, 10], "/root")
        );
    }

    #[test]
    fn name_gives_uid_gid_home_and_supplementary_groups() {
        let x = r("app").unwrap();
        assert_eq!((x.uid, x.gid, x.home.as_str()), (1000, 1001, "/home/app"));
        assert_eq!(x.groups, vec![1001, 10, 29]);
        assert_eq!(r("1000").unwrap(), x, "numeric uid finds the same entry");
    }

    #[test]
    fn explicit_group_replaces_primary_and_drops_supplementary() {
        let x = r("app:audio").unwrap();
        assert_eq!((x.uid, x.gid, x.groups), (1000, 29, vec![29]));
        let x = r("app:4242").unwrap();
        assert_eq!(x.gid, 4242);
    }

    #[test]
    fn unknown_numeric_user_runs_with_gid_0_and_root_home() {
        let x = r("4000").unwrap();
        assert_eq!(
            (x.uid, x.gid, x.groups, x.home.as_str()),
            (4000, 0, vec![0], "/")
        );
        let x = resolve("4000:4000", "", "").unwrap();
        assert_eq!((x.uid, x.gid, x.groups), (4000, 4000, vec![4000]));
    }

    #[test]
    fn unknown_names_are_errors_that_say_what_is_missing() {
        let e = r("ghost").unwrap_err().to_string();
        assert!(e.contains("ghost") && e.contains("/etc/passwd"), "{e}");
        let e = r("app:ghosts").unwrap_err().to_string();
        assert!(e.contains("ghosts") && e.contains("/etc/group"), "{e}");
        assert!(r("app:").is_err());
    }
}
