//! Build the step's root filesystem inside the sandbox init's fresh mount
//! namespace: overlay, /proc, /dev, /sys, /etc/hosts, /etc/resolv.conf, the
//! spec's own mounts, then pivot_root.
//!
//! Mount points that the rootfs lacks are created (and listed in
//! [`Rootfs::created`]) so that [`Rootfs::remove_created`] can delete them
//! after the step: a layer must not gain an empty /proc or /etc/hosts just
//! because the sandbox mounted something there.

use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::mount::{self as rm, MountAttrFlags, MountPropagationFlags, UnmountFlags};

use crate::error::{Context, Result};
use crate::mounts::{self, attach, clone_tree, ensure, resolve, safe_attrs, FsContext, Kind};
use crate::spec::{Mount, Network, Spec};
use crate::syscall::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// Device nodes bound from the host into the step's /dev (as Docker does).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Paths Docker hides from containers: host-wide kernel state and info
/// leaks. Files get /dev/null bound over them, dirs an empty read-only tmpfs.
const MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only (kernel tunables and triggers).
const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The assembled rootfs, already pivoted into.
pub(crate) struct Rootfs {
    /// Mount points created in the rootfs, parents first (absolute paths as
    /// seen from inside).
    pub created: Vec<PathBuf>,
}

/// Assemble the rootfs for `spec` under `spec.work/root` and pivot into it.
/// Must run in a fresh mount namespace (the sandbox init).
pub(crate) fn prepare(spec: &Spec) -> Result<Rootfs> {
    // Nothing we mount may propagate to kiln's (the host's) namespace.
    rm::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .ctx(|| "make / private")?;

    let root = spec.work.join("root");
    let ovl_work = spec.work.join("ovl");
    // A work dir used before (a retried step) holds overlay's `volatile`
    // marker, which makes a new mount fail: start from an empty one.
    if ovl_work.exists() {
        fs::remove_dir_all(&ovl_work).ctx(|| format!("clear {}", ovl_work.display()))?;
    }
    for d in [&root, &ovl_work] {
        mkdir(d)?;
    }
    mount_overlay(spec, &root, &ovl_work)?;
    let root_fd = rfs::open(
        &root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", root.display()))?;
    let root_fd = root_fd.as_fd();

    let mut created = Vec::new();
    mount_proc(root_fd, &mut created)?;
    mount_dev(root_fd, spec.shm_size, &mut created)?;
    mount_sys(root_fd, spec.network, &mut created)?;
    mount_etc_files(root_fd, spec, &mut created)?;
    for m in &spec.mounts {
        mount_extra(root_fd, m, &mut created)?;
    }
    pivot(root_fd)?;
    Ok(Rootfs { created })
}

fn mkdir(d: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(d) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(e).ctx(|| format!("create {}", d.display()))
        }
        _ => Ok(()),
    }
}

/// Overlay with the new mount API: one `lowerdir+` per layer, so there is no
/// 4 KiB option string to silently truncate; `userxattr` so whiteouts and
/// opaque dirs use `user.overlay.*` (required in a user namespace, and
/// used as real root too so the store has one format).
fn mount_overlay(spec: &Spec, root: &Path, ovl_work: &Path) -> Result<()> {
    let fs = FsContext::open("overlay")?;
    if spec.lowers.is_empty() {
        // FROM scratch: overlay needs at least one lower.
        let empty = spec.work.join("empty");
        mkdir(&empty)?;
        fs.set("lowerdir+", &empty)?;
    }
    for l in &spec.lowers {
        fs.set("lowerdir+", l)?;
    }
    fs.set("upperdir", &spec.upper)?;
    fs.set("workdir", ovl_work)?;
    fs.flag("userxattr")?;
    // No syncfs of the whole upper filesystem at every unmount: a step's
    // upper dir is scratch until kiln commits it (and syncs it then).
    fs.flag("volatile")?;
    let mnt = fs.mount(MountAttrFlags::empty())?;
    mounts::attach_at(mnt.as_fd(), root)
}

/// A fresh, empty, read-only tmpfs (to mask a directory).
fn empty_ro_tmpfs() -> Result<OwnedFd> {
    let fs = FsContext::open("tmpfs")?;
    fs.set("size", "0")?;
    fs.mount(safe_attrs() | MountAttrFlags::MOUNT_ATTR_RDONLY)
}

/// Hide `path` if it exists: /dev/null over a file, empty tmpfs over a dir.
fn mask(root: BorrowedFd<'_>, path: &str) -> Result<()> {
    let target = match resolve(root, Path::new(path)) {
        Ok(fd) => fd,
        Err(_) => return Ok(()), // absent on this kernel: nothing to hide
    };
    let st = rfs::fstat(&target).ctx(|| format!("stat {path}"))?;
    let cover = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        empty_ro_tmpfs()?
    } else {
        clone_tree(rfs::CWD, Path::new("/dev/null"), false)?
    };
    attach(cover.as_fd(), target.as_fd(), Path::new(path))
}

/// Bind `path` onto itself read-only (a no-op when absent).
fn make_readonly(root: BorrowedFd<'_>, path: &str) -> Result<()> {
    let target = match resolve(root, Path::new(path)) {
        Ok(fd) => fd,
        Err(_) => return Ok(()),
    };
    let tree = clone_tree(target.as_fd(), Path::new(""), true)?;
    mounts::set_attrs(
        tree.as_fd(),
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        true,
    )?;
    attach(tree.as_fd(), target.as_fd(), Path::new(path))
}

/// /proc for the step's own pid namespace, with Docker's masked and
/// read-only paths (so /proc/sys cannot be written even where the user
/// namespace owns the sysctl, e.g. net.* in a new network namespace).
fn mount_proc(root: BorrowedFd<'_>, created: &mut Vec<PathBuf>) -> Result<()> {
    let target = ensure(root, Path::new("/proc"), Kind::Dir, created)?;
    let mnt = match FsContext::open("proc")?.mount_unless_refused(safe_attrs())? {
        Some(m) => m,
        // The container masks paths of its /proc, so the kernel refuses a
        // fresh procfs ("Mount too revealing"). Its own /proc, bound
        // recursively, keeps those masks; the step then sees the
        // container's processes. Only safe in a user namespace of kiln's:
        // a step has no capability over the container's namespace, so no
        // /proc/PID/root of a container process opens for it (ptrace
        // access across user namespaces needs CAP_SYS_PTRACE there).
        // Without one, the step holds the same capabilities as the job's
        // own processes and could walk out through them.
        None if !crate::degrade::own_userns() => {
            return Err(crate::error::Error::Setup(
                "cannot mount a fresh /proc for RUN steps: the container masks paths of its \
                 /proc, and kiln runs without a user namespace of its own here, so binding the \
                 container's /proc would open its processes to the step. Run the container \
                 with --security-opt systempaths=unconfined (docker), --security-opt unmask=ALL \
                 (podman) or procMount: Unmasked (Kubernetes)"
                    .into(),
            ))
        }
        None => {
            crate::degrade::note(
                "cannot mount a fresh /proc for RUN steps (the container masks paths of its \
                 /proc); steps see the container's /proc (its processes) instead. For full \
                 isolation run the container with --security-opt systempaths=unconfined \
                 (docker), --security-opt unmask=ALL (podman) or procMount: Unmasked (Kubernetes)",
            );
            clone_tree(rfs::CWD, Path::new("/proc"), true)?
        }
    };
    attach(mnt.as_fd(), target.as_fd(), Path::new("/proc"))?;
    for p in MASKED.iter().filter(|p| p.starts_with("/proc/")) {
        mask(root, p)?;
    }
    for p in READONLY {
        make_readonly(root, p)?;
    }
    Ok(())
}

/// /dev as a tmpfs holding binds of the host's harmless devices, devpts
/// (new instance) and /dev/shm.
fn mount_dev(
    root: BorrowedFd<'_>,
    shm_size: Option<u64>,
    created: &mut Vec<PathBuf>,
) -> Result<()> {
    let dev_path = Path::new("/dev");
    let target = ensure(root, dev_path, Kind::Dir, created)?;
    let fs = FsContext::open("tmpfs")?;
    fs.set("mode", "755")?;
    fs.set("size", "65536k")?;
    let mnt = fs.mount(MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC)?;
    attach(mnt.as_fd(), target.as_fd(), dev_path)?;
    // Populate the tmpfs through the mount's own root: only names we create.
    let dev = mnt;
    let node = |name: &str| -> Result<OwnedFd> {
        rfs::openat(
            &dev,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open /dev/{name}"))
    };
    for name in DEVICES {
        rfs::openat(
            &dev,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .ctx(|| format!("create /dev/{name}"))?;
        let src = clone_tree(rfs::CWD, &Path::new("/dev").join(name), false)?;
        attach(src.as_fd(), node(name)?.as_fd(), &dev_path.join(name))?;
    }
    for (name, mode) in [("pts", 0o755), ("shm", 0o1777)] {
        rfs::mkdirat(&dev, name, Mode::from_raw_mode(mode)).ctx(|| format!("mkdir /dev/{name}"))?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        rfs::symlinkat(to, &dev, link).ctx(|| format!("symlink /dev/{link}"))?;
    }

    let pts = FsContext::open("devpts")?;
    pts.set("ptmxmode", "0666")?;
    pts.set("mode", "0620")?;
    // gid 5 (tty) exists only when a subordinate range is mapped.
    let _ = pts.set("gid", "5");
    let pts = pts.mount(MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC)?;
    attach(pts.as_fd(), node("pts")?.as_fd(), &dev_path.join("pts"))?;

    let shm = FsContext::open("tmpfs")?;
    shm.set("mode", "1777")?;
    let size = shm_size.map_or_else(|| "65536k".to_string(), |s| s.to_string());
    shm.set("size", size.as_str())?;
    let shm = shm.mount(safe_attrs())?;
    attach(shm.as_fd(), node("shm")?.as_fd(), &dev_path.join("shm"))
}

/// /sys read-only: a fresh sysfs when the step has its own network
/// namespace (sysfs refuses otherwise), else the host's /sys bound
/// recursively and made read-only as a whole tree.
fn mount_sys(root: BorrowedFd<'_>, net: Network, created: &mut Vec<PathBuf>) -> Result<()> {
    let sys = Path::new("/sys");
    let target = ensure(root, sys, Kind::Dir, created)?;
    let mnt = match net {
        // The private network namespace is ours too: no host /sys/class/net.
        Network::None | Network::Private => {
            match FsContext::open("sysfs")?
                .mount_unless_refused(safe_attrs() | MountAttrFlags::MOUNT_ATTR_RDONLY)?
            {
                Some(m) => m,
                None => {
                    // Refused like procfs when the container masks /sys paths.
                    crate::degrade::note(
                        "cannot mount a fresh /sys for RUN steps (the container masks paths \
                         of its /sys); steps see the container's /sys, read-only",
                    );
                    readonly_host_sys(sys)?
                }
            }
        }
        Network::Host => readonly_host_sys(sys)?,
    };
    attach(mnt.as_fd(), target.as_fd(), sys)?;
    for p in MASKED.iter().filter(|p| p.starts_with("/sys/")) {
        mask(root, p)?;
    }
    Ok(())
}

/// The host's /sys bound recursively, read-only as a whole tree.
fn readonly_host_sys(sys: &Path) -> Result<OwnedFd> {
    let tree = clone_tree(rfs::CWD, sys, true)?;
    mounts::set_attrs(
        tree.as_fd(),
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        true,
    )?;
    Ok(tree)
}

/// /etc/hosts and /etc/resolv.conf, written into the work dir and bound
/// over the rootfs's (writes by the step land in the work dir, not the layer).
fn mount_etc_files(root: BorrowedFd<'_>, spec: &Spec, created: &mut Vec<PathBuf>) -> Result<()> {
    let hostname = if spec.hostname.is_empty() {
        "kiln"
    } else {
        &spec.hostname
    };
    let mut hosts =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for line in &spec.extra_hosts {
        hosts.push_str(line);
        hosts.push('\n');
    }
    let resolv = match spec.network {
        // Read before pivot_root: afterwards the host's file is gone.
        Network::Host => fs::read("/etc/resolv.conf").unwrap_or_default(),
        Network::Private => {
            crate::net::private_resolv(&fs::read("/etc/resolv.conf").unwrap_or_default())
        }
        Network::None => Vec::new(),
    };
    for (inside, name, content) in [
        ("/etc/hosts", "hosts", hosts.as_bytes()),
        ("/etc/resolv.conf", "resolv.conf", &resolv[..]),
    ] {
        let host_file = spec.work.join(name);
        fs::File::create(&host_file)
            .and_then(|mut f| f.write_all(content))
            .ctx(|| format!("write {}", host_file.display()))?;
        let target = ensure(root, Path::new(inside), Kind::File, created)?;
        let src = clone_tree(rfs::CWD, &host_file, false)?;
        attach(src.as_fd(), target.as_fd(), Path::new(inside))?;
    }
    Ok(())
}

/// The dirs a step's mount points may have copied up: /etc (for the
/// hosts/resolv.conf mount points) and every parent of each extra mount's
/// target, deepest first.
pub(crate) fn copy_up_candidates(spec: &Spec) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/etc")];
    for m in &spec.mounts {
        let target = match m {
            Mount::Bind { target, .. } | Mount::Tmpfs { target, .. } => target,
        };
        dirs.extend(target.ancestors().skip(1).map(Path::to_path_buf));
    }
    dirs.retain(|d| d.components().count() > 1);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    dirs
}

/// Making a mount point in an existing dir copies that dir (and its
/// parents) up into the upper dir even when the command changes nothing
/// there. After the step (unmounted), each such copy-up in `dirs` (see
/// [`copy_up_candidates`]) — empty, not opaque, same mode and owner as
/// below, or absent below — is removed, so a step that changes nothing
/// leaves an empty upper and a mount leaves no trace. (A `touch` of such a
/// dir alone is lost with it, as in BuildKit.) Paths are looked up beneath
/// the upper and each lower without following any symlink: a target
/// reached through a symlink in the rootfs keeps its copy-up.
pub(crate) fn drop_copy_ups(upper: &Path, lowers: &[PathBuf], dirs: &[PathBuf]) -> Result<()> {
    let Ok(up) = open_root(upper) else {
        return Ok(());
    };
    for dir in dirs {
        let r = mounts::rel(dir);
        let (Some(parent), Some(name)) = (r.parent(), r.file_name()) else {
            continue;
        };
        let Ok(fd) = open_dir(up.as_fd(), &r) else {
            continue;
        };
        if !is_empty(fd.as_fd())? || is_opaque(fd.as_fd()) {
            continue;
        }
        let st = rfs::fstat(&fd).ctx(|| format!("stat {}", dir.display()))?;
        if !same_as_below(lowers, &r, &st) {
            continue;
        }
        let parent = open_dir(up.as_fd(), parent).ctx(|| format!("open {}", dir.display()))?;
        rfs::unlinkat(&parent, name, rfs::AtFlags::REMOVEDIR)
            .ctx(|| format!("remove the copy-up of {}", dir.display()))?;
    }
    Ok(())
}

/// Opens an upper or lower dir (a path kiln chose).
fn open_root(dir: &Path) -> rustix::io::Result<OwnedFd> {
    rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the dir `rel` beneath `root`, following no symlink at all.
fn open_dir(root: BorrowedFd<'_>, rel: &Path) -> std::io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rfs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        rfs::ResolveFlags::BENEATH | rfs::ResolveFlags::NO_SYMLINKS | rfs::ResolveFlags::NO_XDEV,
    )
    .map_err(std::io::Error::from)
}

fn is_empty(dir: BorrowedFd<'_>) -> Result<bool> {
    for e in rfs::Dir::read_from(dir).ctx(|| "read a copied-up dir")? {
        let e = e.ctx(|| "read a copied-up dir")?;
        if !matches!(e.file_name().to_bytes(), b"." | b"..") {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The topmost lower holding `rel` decides: a dir with the same mode and
/// owner, or no lower holds it.
fn same_as_below(lowers: &[PathBuf], rel: &Path, st: &rfs::Stat) -> bool {
    for l in lowers {
        let Ok(root) = open_root(l) else {
            continue;
        };
        match open_dir(root.as_fd(), rel) {
            Ok(below) => {
                return rfs::fstat(&below).is_ok_and(|b| {
                    (b.st_mode, b.st_uid, b.st_gid) == (st.st_mode, st.st_uid, st.st_gid)
                })
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            // A symlink or a non-dir on the way: not a plain copy-up.
            Err(_) => return false,
        }
    }
    true
}

fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    let mut value = [0u8; 1];
    rfs::fgetxattr(dir, "user.overlay.opaque", &mut value[..])
        .is_ok_and(|n| n == 1 && value[0] == b'y')
}

/// One of the spec's own mounts.
fn mount_extra(root: BorrowedFd<'_>, m: &Mount, created: &mut Vec<PathBuf>) -> Result<()> {
    match m {
        Mount::Bind {
            source,
            target,
            readonly,
        } => {
            let tree = clone_tree(rfs::CWD, source, true)?;
            let st = rfs::fstat(&tree).ctx(|| format!("stat {}", source.display()))?;
            let kind = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                Kind::Dir
            } else {
                Kind::File
            };
            if *readonly {
                // Recursive: a read-only stage rootfs must not expose a
                // writable submount.
                mounts::set_attrs(tree.as_fd(), MOUNT_ATTR_RDONLY, true)?;
            }
            let t = ensure(root, target, kind, created)?;
            attach(tree.as_fd(), t.as_fd(), target)
        }
        Mount::Tmpfs { target, size, mode } => {
            let fs = FsContext::open("tmpfs")?;
            fs.set("mode", format!("{:o}", mode & 0o7777))?;
            if let Some(size) = size {
                fs.set("size", size.to_string())?;
            }
            let mnt =
                fs.mount(MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV)?;
            let t = ensure(root, target, Kind::Dir, created)?;
            attach(mnt.as_fd(), t.as_fd(), target)
        }
    }
}

/// pivot_root(".", ".") then detach the old root stacked on top: the host's
/// whole tree leaves the step's mount namespace, with no put_old dir needed.
///
/// Where a seccomp filter refuses pivot_root (Docker's default profile,
/// even with CAP_SYS_ADMIN), the new root is moved over `/` and chrooted
/// into instead. The old root then stays mounted beneath it, and a process
/// holding CAP_SYS_CHROOT could climb out with a second chroot: the step's
/// command loses that capability (see [`crate::caps`]).
fn pivot(root: BorrowedFd<'_>) -> Result<()> {
    rustix::process::fchdir(root).ctx(|| "chdir to the new root")?;
    match rustix::process::pivot_root(".", ".") {
        Ok(()) => {
            rm::unmount(".", UnmountFlags::DETACH).ctx(|| "detach the old root")?;
        }
        Err(e) if crate::degrade::is_eperm(e) => {
            rm::mount_move(".", "/").ctx(|| "move the new root over / (pivot_root refused)")?;
            rustix::process::chroot(".").ctx(|| "chroot (pivot_root refused)")?;
            crate::degrade::set_chrooted();
            crate::degrade::note(
                "pivot_root is refused (a seccomp filter); RUN steps enter their root with \
                 chroot instead, without CAP_SYS_CHROOT. For full isolation run the container \
                 with --security-opt seccomp=unconfined",
            );
        }
        Err(e) => return Err(e).ctx(|| "pivot_root"),
    }
    rustix::process::chdir("/").ctx(|| "chdir /")?;
    Ok(())
}

impl Rootfs {
    /// After the step: unmount and delete the mount points the sandbox had
    /// to create, if they are still empty. Best effort; children first.
    pub(crate) fn remove_created(&self) {
        for p in self.created.iter().rev() {
            let _ = rm::unmount(p.as_path(), UnmountFlags::DETACH);
            match rfs::lstat(p.as_path()) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                    let _ = rfs::rmdir(p.as_path());
                }
                Ok(st)
                    if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                        && st.st_size == 0 =>
                {
                    let _ = rfs::unlink(p.as_path());
                }
                _ => {}
            }
        }
    }
}

/// True when this process is in a user namespace other than the initial one.
pub(crate) fn in_user_namespace() -> bool {
    match fs::read_to_string("/proc/self/uid_map") {
        Ok(m) => m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"],
        Err(_) => true,
    }
}
