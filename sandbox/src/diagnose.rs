//! What this environment lets kiln do, and what to change when it does not:
//! the causes of a refused namespace, mount or capability (a seccomp
//! filter, missing capabilities, a masked /proc, disabled user namespaces,
//! a store on overlayfs), turned into the settings that fix them. Used in
//! kiln's errors and by `kiln info`.

use std::path::Path;

/// overlayfs's statfs magic.
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// Settings that let kiln create its namespaces in a container.
const CONTAINER_FIX: &str =
    "\n  docker run --security-opt seccomp=unconfined ...   (or --cap-add SYS_ADMIN as root)\
\n  podman run --security-opt seccomp=unconfined ...\
\n  Kubernetes: securityContext: {seccompProfile: {type: Unconfined}}\
\n  For full RUN isolation add --security-opt systempaths=unconfined (docker), --security-opt \
unmask=ALL (podman), procMount: Unmasked (Kubernetes)\
\n  Or, where none of these can be set, as root in a single-use container running trusted \
Dockerfiles: kiln build --isolation chroot (no namespace, no mount; RUN steps are not isolated \
from kiln, its store or its credentials)";

/// The diagnosis of this process's environment.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    /// `Seccomp:` of /proc/self/status: 0 none, 1 strict, 2 filter.
    pub seccomp: Option<u32>,
    /// CAP_SYS_ADMIN in the effective set.
    pub sys_admin: bool,
    /// Docker default capabilities this process lacks, when it is root
    /// with CAP_SYS_ADMIN (kiln then makes no user namespace, and RUN
    /// steps get only what it holds; elsewhere steps get the full default
    /// set inside kiln's user namespace).
    pub missing_caps: Vec<String>,
    /// Paths the container masks or over-mounts under /proc.
    pub masked_proc: Vec<String>,
    /// Host settings that disable user namespaces, each with its fix.
    pub userns_off: Vec<String>,
    /// The container engine kiln runs in, when it can tell.
    pub container: Option<&'static str>,
}

fn status_field(name: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

fn read_num(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Mount points below /proc other than the kernel's own binfmt_misc.
fn masked_proc() -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with("/proc/") && !p.starts_with("/proc/sys/fs/binfmt_misc"))
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    v
}

fn userns_off() -> Vec<String> {
    let mut v = Vec::new();
    if read_num("/proc/sys/user/max_user_namespaces") == Some(0) {
        v.push(
            "user namespaces are disabled (user.max_user_namespaces = 0): on the host, \
             sysctl -w user.max_user_namespaces=15000"
                .into(),
        );
    }
    if read_num("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        v.push(
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0): \
             on the host, sysctl -w kernel.unprivileged_userns_clone=1"
                .into(),
        );
    }
    if read_num("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
        v.push(
            "AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns = 1): load a profile for kiln, e.g. \
             /etc/apparmor.d/kiln: `abi <abi/4.0>, include <tunables/global> profile kiln \
             /usr/local/bin/kiln flags=(unconfined) { userns, }` then \
             apparmor_parser -r /etc/apparmor.d/kiln"
                .into(),
        );
    }
    v
}

fn container() -> Option<&'static str> {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        Some("kubernetes")
    } else if Path::new("/run/.containerenv").exists() {
        Some("podman")
    } else if Path::new("/.dockerenv").exists() {
        Some("docker")
    } else {
        None
    }
}

/// Look at this process's environment.
pub fn diagnose() -> Diagnosis {
    let eff = status_field("CapEff").and_then(|c| u64::from_str_radix(&c, 16).ok());
    let sys_admin = eff.is_some_and(|m| m & caps::Capability::CAP_SYS_ADMIN.bitmask() != 0);
    let host_mode = sys_admin && rustix::process::geteuid().is_root();
    Diagnosis {
        seccomp: status_field("Seccomp").and_then(|s| s.parse().ok()),
        sys_admin,
        missing_caps: if host_mode {
            crate::caps::missing_default_caps()
                .iter()
                .map(|c| c.to_string())
                .collect()
        } else {
            Vec::new()
        },
        masked_proc: masked_proc(),
        userns_off: userns_off(),
        container: container(),
    }
}

impl Diagnosis {
    /// Why namespaces may be refused here and what to set, as lines.
    pub fn causes(&self) -> Vec<String> {
        let mut v = self.userns_off.clone();
        if self.seccomp == Some(2) {
            v.push(format!(
                "a seccomp filter is active (Seccomp: 2 in /proc/self/status){}",
                if self.sys_admin {
                    ""
                } else {
                    "; Docker's and Kubernetes' default profiles refuse namespaces without \
                     CAP_SYS_ADMIN"
                }
            ));
        }
        v
    }
}

/// Advice appended to an error creating kiln's namespaces.
pub(crate) fn namespace_advice() -> String {
    let d = diagnose();
    let mut s = String::new();
    for c in d.causes() {
        s.push_str("\n  cause: ");
        s.push_str(&c);
    }
    let engine = d
        .container
        .map_or("a container".to_string(), |c| c.to_string());
    if d.container.is_some() || d.seccomp == Some(2) {
        s.push_str(&format!(
            "\nkiln runs inside {engine}, which refuses namespaces here; start it with:{CONTAINER_FIX}"
        ));
    }
    s
}

/// The error for a refused clone3 of kiln's user namespace.
pub(crate) fn clone_refused(e: &std::io::Error) -> String {
    let what = if e.raw_os_error() == Some(libc::ENOSYS) {
        // Docker's profile answers clone3 with ENOSYS (so that libc falls
        // back to clone, which it refuses with EPERM): not an old kernel.
        "clone3 is refused by a seccomp filter (it answers ENOSYS, \"Function not implemented\", \
         though this kernel has clone3)"
            .to_string()
    } else {
        e.to_string()
    };
    format!(
        "cannot create a user namespace: {what}{}",
        namespace_advice()
    )
}

/// An error when `store` (or its nearest existing parent) is on overlayfs:
/// overlayfs cannot use an overlayfs directory as the upper dir of a RUN
/// step, so every RUN would fail.
pub fn overlay_store(store: &Path) -> Option<String> {
    let existing = store.ancestors().find(|p| p.exists())?;
    let st = rustix::fs::statfs(existing).ok()?;
    (st.f_type as i64 == OVERLAYFS_MAGIC).then(|| {
        format!(
            "the store {} is on overlayfs (a container's own filesystem), which overlayfs \
             cannot use for RUN steps' upper dirs; put --root (or KILN_ROOT) on a volume or a \
             tmpfs: docker/podman run -v kiln-store:/store ... kiln --root /store, or \
             --tmpfs /store; in Kubernetes an emptyDir volume",
            store.display()
        )
    })
}
