//! Test fixtures: a busybox rootfs made by the (unprivileged) test user,
//! per-test scratch dirs, and a runner for the `kiln-sandbox-run` binary.
//!
//! The binary is found through `KILN_SANDBOX_RUN` (set by
//! scripts/test-sandbox.sh, which copies it where the test user can reach
//! it) or else the one cargo built.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub fn bin() -> PathBuf {
    std::env::var_os("KILN_SANDBOX_RUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kiln-sandbox-run")))
}

/// Root of this test process's files.
pub fn test_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let r = std::env::temp_dir().join(format!("kiln-sandbox-test-{}", std::process::id()));
        fs::create_dir_all(&r).unwrap();
        r
    })
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
    app:x:1000:1000:app:/home/app:/bin/sh\n\
    nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n";

/// A busybox rootfs: /bin/busybox, every applet as a symlink, /etc/passwd
/// and /etc/group, the usual empty dirs. No /etc/hosts or resolv.conf: the
/// sandbox must create and later remove those mount points itself.
pub fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let b = test_root().join("base");
        let _ = fs::remove_dir_all(&b);
        for d in [
            "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "dev", "sys", "tmp", "root",
            "home/app",
        ] {
            fs::create_dir_all(b.join(d)).unwrap();
        }
        fs::set_permissions(b.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::copy("/bin/busybox", b.join("bin/busybox"))
            .expect("/bin/busybox (busybox-static) is needed");
        let list = Command::new("/bin/busybox")
            .arg("--list-full")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let p = b.join(applet);
            if p.symlink_metadata().is_err() {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink("/bin/busybox", &p).unwrap();
            }
        }
        fs::write(b.join("etc/passwd"), PASSWD).unwrap();
        fs::write(b.join("etc/group"), GROUP).unwrap();
        b
    })
}

/// The current user's subordinate uid/gid start (from /etc/subuid, subgid).
pub fn sub_start(file: &str) -> Option<u32> {
    let uid = unsafe { libc::getuid() };
    let name = String::from_utf8(Command::new("id").arg("-un").output().ok()?.stdout).ok()?;
    let name = name.trim();
    fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() == 3 && (f[0] == name || f[0] == uid.to_string())).then(|| f[1].parse().ok())?
    })
}

/// Result of one CLI run.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Scratch space of one test: `upper/`, `work/`, and anything else.
pub struct Case {
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Case {
    pub fn new(name: &str) -> Case {
        let dir = test_root().join(format!("{name}-{}", SEQ.fetch_add(1, Ordering::Relaxed)));
        let upper = dir.join("upper");
        let work = dir.join("work");
        fs::create_dir_all(&upper).unwrap();
        fs::create_dir_all(&work).unwrap();
        Case { dir, upper, work }
    }

    /// A step over the busybox base.
    pub fn step(&self) -> Step {
        let mut s = Step {
            cmd: Command::new(bin()),
            lowers: vec![],
            leak_fd: None,
        };
        s.cmd
            .arg("run")
            .arg("--upper")
            .arg(&self.upper)
            .arg("--work")
            .arg(&self.work);
        s.cmd.stdin(Stdio::null());
        s
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        // Files owned by subordinate ids can only be deleted inside the
        // user namespace.
        let _ = Command::new(bin()).arg("rm").arg(&self.dir).output();
    }
}

pub struct Step {
    pub cmd: Command,
    lowers: Vec<PathBuf>,
    leak_fd: Option<PathBuf>,
}

impl Step {
    pub fn opt(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Step {
        self.cmd.arg(k).arg(v);
        self
    }
    pub fn lower(mut self, l: impl Into<PathBuf>) -> Step {
        self.lowers.push(l.into());
        self
    }
    /// Make the CLI (kiln) start with fd 7 open on `dir`, not close-on-exec:
    /// the leak the sandbox must not pass on.
    pub fn leak_fd7(mut self, dir: &Path) -> Step {
        self.leak_fd = Some(dir.to_path_buf());
        self
    }
    /// The command line for `argv`, not started (for tests that bound
    /// how long it may run).
    pub fn prepare(mut self, argv: &[&str]) -> Command {
        let mut lowers = std::mem::take(&mut self.lowers);
        lowers.push(base().to_path_buf());
        for l in &lowers {
            self.cmd.arg("--lower").arg(l);
        }
        self.cmd.arg("--").args(argv);
        self.cmd
    }
    pub fn argv(mut self, argv: &[&str]) -> Out {
        let leak_fd = self.leak_fd.take();
        let mut cmd = self.prepare(argv);
        let _keep;
        if let Some(dir) = &leak_fd {
            let f = fs::File::open(dir).unwrap();
            let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
            _keep = f;
            // SAFETY: dup2 is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(raw, 7) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.output().expect("run kiln-sandbox-run").into()
    }
    pub fn sh(self, script: &str) -> Out {
        self.argv(&["/bin/sh", "-c", script])
    }
}

/// Every entry below `root`: relative path → (type+mode, uid, gid, rdev,
/// content or link target).
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, u64, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, u32, u32, u64, Vec<u8>)>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let m = fs::symlink_metadata(&p).unwrap();
            let data = if m.file_type().is_symlink() {
                fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if m.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                (m.mode(), m.uid(), m.gid(), m.rdev(), data),
            );
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Pids of host processes whose command line contains `needle`.
pub fn host_pids_with(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(c) = fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .contains(needle)
            {
                pids.push(pid);
            }
        }
    }
    pids
}
