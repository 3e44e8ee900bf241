//! The commands about kiln itself, which never touch a store: `version`,
//! `completion`, and the hidden `man` that writes the man pages from the
//! same CLI definition the binary parses with (so they never go stale).

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;

pub fn version() -> Result<i32> {
    out!("kiln {}", env!("CARGO_PKG_VERSION"))?;
    out!("commit:   {}", env!("KILN_GIT_COMMIT"))?;
    out!("rustc:    {}", env!("KILN_RUSTC_VERSION"))?;
    out!("target:   {}", env!("KILN_TARGET"))?;
    out!(
        "platform: {}/{}",
        std::env::consts::OS,
        oci_arch(std::env::consts::ARCH)
    )?;
    Ok(0)
}

/// The architecture as OCI platforms name it.
fn oci_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn completion(shell: clap_complete::Shell) -> Result<i32> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut script);
    use std::io::Write as _;
    std::io::stdout()
        .write_all(&script)
        .map_err(crate::stdout_error)?;
    Ok(0)
}

/// Writes `kiln.1` and `kiln-CMD[-SUB].1` for every visible command.
pub fn man(dir: &Path) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let n = write_pages(&cmd, "kiln", dir)?;
    say!("wrote {n} man pages to {}", dir.display());
    Ok(0)
}

fn write_pages(cmd: &clap::Command, name: &str, dir: &Path) -> Result<usize> {
    // clap names commands with &'static str; this one-shot command
    // leaks its few page names rather than enabling clap's `string`.
    let page = cmd.clone().name(&*String::leak(name.to_string()));
    let mut bytes = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut bytes)
        .context("rendering a man page")?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        n += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(n)
}
