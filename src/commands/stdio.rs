//! Archives written to standard output (`-o -`, `dest=-`, `kiln save`
//! without `-o`), so that they pipe: `kiln build -o type=docker . | podman
//! load`.

use std::io::{BufWriter, IsTerminal, Write};
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Whether `dest` names standard output.
pub fn is_stdout(dest: &Path) -> bool {
    dest.as_os_str() == "-"
}

/// As docker does: a tar never goes to a terminal, where it would be
/// noise at best and escape sequences at worst.
pub fn refuse_terminal(what: &str) -> Result<()> {
    if std::io::stdout().is_terminal() {
        bail!("{what}: refusing to write a tar archive to a terminal; give a file (dest=FILE, -o FILE) or redirect stdout");
    }
    Ok(())
}

/// A buffered writer to `dest`: a new file, or standard output for `-`.
pub fn create(dest: &Path) -> Result<Box<dyn Write>> {
    if is_stdout(dest) {
        // A file of its own on fd 1: the Stdout handle's line buffering
        // would flush at every newline byte of the archive.
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating stdout")?;
        return Ok(Box::new(Stdout(BufWriter::with_capacity(
            1 << 16,
            std::fs::File::from(fd),
        ))));
    }
    let file = std::fs::File::create(dest).with_context(|| format!("create {}", dest.display()))?;
    Ok(Box::new(BufWriter::new(file)))
}

/// Standard output, whose failures say so (`| head -c 10` closes it).
struct Stdout(BufWriter<std::fs::File>);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(on_stdout)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(on_stdout)
    }
}

fn on_stdout(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("writing to stdout: {e}"))
}
