//! Foreign RUN steps run through the kernel's binfmt_misc: an ELF of
//! another architecture is handed to its registered interpreter (qemu).
//! Only a handler registered with the F flag works in kiln's user
//! namespace (the kernel opened the interpreter when it was registered);
//! without one a foreign RUN would fail with ENOEXEC deep in the build,
//! so the build stops before anything runs, with the fix.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use kiln_dockerfile::instructions::{Command, Instruction};
use kiln_dockerfile::resolve::{Base, Platform};

use super::Builder;

/// Where binfmt_misc is mounted; `KILN_BINFMT_MISC` names another dir
/// laid out alike (tests use it to show a machine without a handler).
fn handlers_dir() -> PathBuf {
    std::env::var_os("KILN_BINFMT_MISC")
        .map_or_else(|| PathBuf::from("/proc/sys/fs/binfmt_misc"), PathBuf::from)
}

impl Builder<'_> {
    /// Fails when a stage to build runs RUN (its own, or its parent
    /// stage's ONBUILD RUN) for a platform this machine cannot execute,
    /// natively or through an F-flagged handler. Checked before the base
    /// images are read (a pull may be long).
    pub(super) fn check_foreign_runs(&self) -> Result<()> {
        self.check_stages(&self.req.graph.order, |i| {
            self.dockerfile_runs(i).then_some("runs RUN")
        })
    }

    /// The same check once the base images' ONBUILD triggers are known
    /// (`trigger_deps`), before any stage runs: a trigger's RUN is a
    /// foreign RUN too, and the stages the triggers added are checked.
    pub(super) fn check_foreign_triggers(&self) -> Result<()> {
        self.check_stages(&self.triggers.order, |i| {
            if self.dockerfile_runs(i) {
                Some("runs RUN")
            } else if self.base_triggers(i).iter().any(is_run) {
                Some("runs RUN (a trigger of its base image)")
            } else {
                None
            }
        })
    }

    /// Whether stage `index` runs a RUN written in the Dockerfile: its own,
    /// or an ONBUILD RUN of the stage it is built `FROM`.
    fn dockerfile_runs(&self, index: usize) -> bool {
        let graph = &self.req.graph;
        let own = &graph.file.stages[index].commands;
        let parent = match graph.stages[index].base {
            Base::Stage(p) => graph.file.stages[p].commands.as_slice(),
            _ => &[],
        };
        own.iter().any(is_run)
            || parent.iter().any(|c| match &c.instruction {
                Instruction::Onbuild(o) => is_run(&o.trigger),
                _ => false,
            })
    }

    /// Fails for the first of `stages` that `runs` says runs RUN (what
    /// it runs, for the message) for a platform this machine cannot run.
    fn check_stages(
        &self,
        stages: &[usize],
        runs: impl Fn(usize) -> Option<&'static str>,
    ) -> Result<()> {
        let graph = &self.req.graph;
        let dir = handlers_dir();
        for &index in stages {
            let Some(runs) = runs(index) else {
                continue;
            };
            let platform = self.stage_platform(index)?;
            if native(&platform) {
                continue;
            }
            let label = graph.stage_label(index);
            let host = Platform::host();
            let qemu = qemu_name(&platform.arch).filter(|_| platform.os == "linux");
            let Some(qemu) = qemu else {
                bail!(
                    "stage {label} {runs} for {platform}: kiln runs RUN steps of linux \
platforms only (through qemu when foreign); build for --platform {host}, or leave RUN out of that stage"
                );
            };
            if let Err(why) = handler(&dir, &platform) {
                bail!(
                    "stage {label} {runs} for {platform}, which this {host} machine cannot execute: {why}.\n\
Fix: as root, `apt-get install qemu-user-static binfmt-support` (Debian/Ubuntu), then, if \
{} is empty, `mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc` and \
`update-binfmts --enable qemu-{qemu}`; or build for --platform {host} only",
                    dir.display(),
                );
            }
        }
        Ok(())
    }
}

fn is_run(cmd: &Command) -> bool {
    matches!(cmd.instruction, Instruction::Run(_))
}

/// Platforms the host CPU runs without emulation.
fn native(p: &Platform) -> bool {
    let host = Platform::host();
    p.os == host.os && (p.arch == host.arch || (host.arch == "amd64" && p.arch == "386"))
}

/// The ELF identity of an architecture: (class, little-endian, e_machine).
fn elf(arch: &str) -> Option<(u8, bool, u16)> {
    Some(match arch {
        "amd64" => (2, true, 62),
        "386" => (1, true, 3),
        "arm64" => (2, true, 183),
        "arm" => (1, true, 40),
        "s390x" => (2, false, 22),
        "ppc64le" => (2, true, 21),
        "riscv64" => (2, true, 243),
        "mips64le" => (2, true, 8),
        "loong64" => (2, true, 258),
        _ => return None,
    })
}

/// qemu's name of an architecture (its `qemu-NAME` binary and handler).
fn qemu_name(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "x86_64",
        "386" => "i386",
        "arm64" => "aarch64",
        "arm" => "arm",
        "s390x" => "s390x",
        "ppc64le" => "ppc64le",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// The first 20 bytes of an executable of `arch`.
fn elf_header(arch: &str) -> Option<[u8; 20]> {
    let (class, le, machine) = elf(arch)?;
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = class;
    h[5] = if le { 1 } else { 2 };
    h[6] = 1;
    let (e_type, machine) = if le {
        (2u16.to_le_bytes(), machine.to_le_bytes())
    } else {
        (2u16.to_be_bytes(), machine.to_be_bytes())
    };
    h[16..18].copy_from_slice(&e_type);
    h[18..20].copy_from_slice(&machine);
    Some(h)
}

/// Ok when an enabled handler with the F flag takes `platform`'s
/// executables; else why not.
fn handler(dir: &Path, platform: &Platform) -> Result<(), String> {
    let Some(header) = elf_header(&platform.arch) else {
        return Err(format!(
            "kiln knows no executable format of {}",
            platform.arch
        ));
    };
    let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
    if status.trim() != "enabled" {
        return Err(format!(
            "binfmt_misc is not mounted or not enabled at {}",
            dir.display()
        ));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut without_f = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "status" || name == "register" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let h = Handler::parse(&text);
        if !h.enabled || !h.takes(&header) {
            continue;
        }
        if h.flags.contains('F') {
            return Ok(());
        }
        without_f = Some(name);
    }
    Err(match without_f {
        Some(name) => format!(
            "its binfmt_misc handler {name} lacks the F flag, so it cannot start inside a user namespace"
        ),
        None => format!("no binfmt_misc handler is registered for {}", platform.arch),
    })
}

/// One `/proc/sys/fs/binfmt_misc/NAME` entry.
#[derive(Default)]
struct Handler {
    enabled: bool,
    flags: String,
    offset: usize,
    magic: Vec<u8>,
    mask: Vec<u8>,
}

impl Handler {
    fn parse(text: &str) -> Handler {
        let mut h = Handler::default();
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "enabled" => h.enabled = true,
                "flags:" => h.flags = value.trim().to_string(),
                "offset" => h.offset = value.trim().parse().unwrap_or(usize::MAX),
                "magic" => h.magic = hex(value.trim()),
                "mask" => h.mask = hex(value.trim()),
                _ => {}
            }
        }
        h
    }

    /// Whether the magic (under its mask) matches the header.
    fn takes(&self, header: &[u8]) -> bool {
        if self.magic.is_empty() || self.offset.saturating_add(self.magic.len()) > header.len() {
            return false;
        }
        let bytes = &header[self.offset..self.offset + self.magic.len()];
        bytes
            .iter()
            .zip(&self.magic)
            .enumerate()
            .all(|(i, (b, m))| {
                let mask = self.mask.get(i).copied().unwrap_or(0xff);
                b & mask == m & mask
            })
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn a_qemu_entry_takes_its_arch_only() {
        let h = Handler::parse(AARCH64);
        assert!(h.enabled && h.flags.contains('F'));
        assert!(h.takes(&elf_header("arm64").unwrap()));
        assert!(!h.takes(&elf_header("amd64").unwrap()));
        assert!(!h.takes(&elf_header("s390x").unwrap()));
    }
}
