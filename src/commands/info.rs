//! `kiln info`: the store, the id mapping, and what this environment lets
//! kiln do (user namespaces, overlay, network, seccomp), with the settings
//! that fix what it refuses.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use kiln_sandbox::{diagnose, UserNamespace};
use kiln_store::Store;

/// Print the diagnosis, then enter kiln's namespace and print what it got.
/// Exit 0 when RUN steps can work here, 1 when kiln's namespace cannot be
/// created.
pub fn run(root: Option<&Path>) -> Result<i32> {
    // The re-executed process sees its namespace (all capabilities, its
    // own maps): the environment is described by the first one only.
    if !UserNamespace::is_reexecuted() {
        environment()?;
        // The namespace child writes to the same stdout next.
        std::io::stdout().flush().map_err(crate::stdout_error)?;
    }
    let ns = match UserNamespace::enter() {
        Ok(ns) => ns,
        Err(e) => {
            out!("user namespace:   cannot be created: {e}")?;
            return Ok(1);
        }
    };
    let store = store_path(root, ns.caller_was_root())?;
    out!("store:            {}", store.display())?;
    if let Some(advice) = diagnose::overlay_store(&store) {
        out!("store filesystem: overlayfs: builds fail: {advice}")?;
    } else {
        out!("store filesystem: ok (not overlayfs)")?;
    }
    match &ns {
        UserNamespace::Host => {
            out!("id mapping:       none (root, with a mount namespace of its own)")?
        }
        UserNamespace::Entered { uids, gids } => {
            let what = match (uids, gids) {
                (Some(u), Some(g)) => format!(
                    "id 0 = the caller, ids 1-{} = uids {}-{} / gids {}-{}",
                    u.count.min(g.count),
                    u.start,
                    u.start as u64 + u.count as u64 - 1,
                    g.start,
                    g.start as u64 + g.count as u64 - 1
                ),
                _ => "single id: only 0 (the caller); a chown to any other id fails".into(),
            };
            out!("id mapping:       user namespace, {what}")?;
        }
    }
    match kiln_sandbox::private_network() {
        Ok(()) => out!("network (pasta):  ok, RUN steps get a private network")?,
        Err(e) => out!("network (pasta):  unavailable ({e}); RUN steps share the host's network")?,
    }
    Ok(0)
}

fn store_path(root: Option<&Path>, caller_root: bool) -> Result<PathBuf> {
    let root = root
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Store::default_root(caller_root));
    Ok(std::path::absolute(&root)?)
}

/// What kiln was started in: seccomp, capabilities, /proc, user namespaces.
fn environment() -> Result<()> {
    let d = diagnose::diagnose();
    out!(
        "container:        {}",
        d.container.unwrap_or("none detected")
    )?;
    let seccomp = match d.seccomp {
        Some(0) => "none".to_string(),
        Some(1) => "strict".to_string(),
        Some(2) => "filter (a container's profile may refuse namespaces and mounts)".to_string(),
        Some(n) => format!("mode {n}"),
        None => "unknown".to_string(),
    };
    out!("seccomp:          {seccomp}")?;
    let caps = if !d.sys_admin {
        "CAP_SYS_ADMIN not held: kiln makes a user namespace, RUN steps get Docker's default \
         set in it"
            .to_string()
    } else if d.missing_caps.is_empty() {
        "CAP_SYS_ADMIN held; all of Docker's default set".to_string()
    } else {
        format!(
            "CAP_SYS_ADMIN held; lacks {} (RUN steps run without them)",
            d.missing_caps.join(", ")
        )
    };
    out!("capabilities:     {caps}")?;
    out!("{}", super::isolation::info_line())?;
    if d.masked_proc.is_empty() {
        out!("/proc:            not masked (RUN steps get a fresh /proc)")?;
    } else {
        out!(
            "/proc:            masked ({}): where the kernel then refuses a fresh /proc, RUN \
             steps see the container's; for a fresh one run the container with --security-opt systempaths=unconfined (docker), \
             --security-opt unmask=ALL (podman) or procMount: Unmasked (Kubernetes)",
            d.masked_proc.join(" ")
        )?;
    }
    for c in d.userns_off {
        out!("user namespaces:  {c}")?;
    }
    Ok(())
}
