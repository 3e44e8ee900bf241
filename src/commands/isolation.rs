//! `--isolation`: which mode a build runs RUN steps in, from the flag or
//! the environment (buildah's variable too, so CI recipes written for
//! buildah carry over).

use anyhow::{Context, Result};
use kiln_engine::Isolation;

use crate::cli::{BuildArgs, Command};

/// The flag, else `KILN_ISOLATION`, else `BUILDAH_ISOLATION`, else oci.
pub fn of(args: &BuildArgs) -> Result<Isolation> {
    if let Some(v) = &args.isolation {
        return Isolation::parse(v).context("--isolation");
    }
    for var in ["KILN_ISOLATION", "BUILDAH_ISOLATION"] {
        if let Some(v) = std::env::var_os(var) {
            let v = v.to_string_lossy();
            if !v.is_empty() {
                return Isolation::parse(&v).with_context(|| format!("{var}={v}"));
            }
        }
    }
    Ok(Isolation::Oci)
}

/// Whether `command` is a build in chroot mode: kiln then enters no
/// namespace at all (none can be made where this mode is meant to run).
pub fn chroot_build(command: &Command) -> Result<bool> {
    match command {
        Command::Build(args) if of(args)? == Isolation::Chroot => {
            // Before the store is touched: nothing else could run the steps.
            kiln_sandbox::check_chroot()?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// `kiln info`'s line on chroot mode: whether it can run here.
pub fn info_line() -> String {
    if kiln_sandbox::can_chroot() {
        "chroot isolation: usable (CAP_SYS_CHROOT held): --isolation chroot runs RUN steps \
         with no namespace and no mount, and without isolation from kiln"
            .into()
    } else {
        "chroot isolation: not usable (CAP_SYS_CHROOT not held: run kiln as root in the \
         container)"
            .into()
    }
}
