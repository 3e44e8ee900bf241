//! `kiln pull`, `push`, `login`, `logout`, and the registry client the
//! build command uses for its bases and `-o type=registry`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use kiln_registry::{Events, Options, Platform, Registry};
use kiln_store::Store;

use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, RegistryArgs};

/// The client for these flags (reads registries.conf, no network yet).
pub fn client(args: &RegistryArgs, platform: Option<&str>) -> Result<Registry> {
    let platform = platform
        .map(Platform::parse)
        .transpose()
        .context("--platform")?;
    Ok(Registry::new(Options {
        insecure: args.insecure_registries.clone(),
        platform,
        auth_file: args.authfile.clone(),
        ..Options::default()
    })?)
}

/// Progress as plain lines on stderr.
struct Lines {
    quiet: bool,
}

impl Events for Lines {
    fn line(&self, text: &str) {
        if !self.quiet {
            say!("{text}");
        }
    }
}

pub fn pull(store: &Store, args: &PullArgs) -> Result<i32> {
    let registry = client(&args.registry, args.platform.as_deref())?;
    let pulled = registry.pull(store, &args.reference, &Lines { quiet: args.quiet })?;
    if !args.quiet {
        for n in &pulled.names {
            say!("stored as {n}");
        }
    }
    out!("sha256:{}", pulled.image.id())?;
    Ok(0)
}

pub fn push(store: &Store, args: &PushArgs) -> Result<i32> {
    if let kiln_store::Stored::List(list) = store.lookup(&args.image)? {
        return push_list(store, args, &list);
    }
    let image = store
        .image(&args.image)
        .with_context(|| format!("no image {:?} in the store", args.image))?;
    let dest = match &args.destination {
        Some(d) => d.clone(),
        None => image
            .names
            .iter()
            .find(|n| *n == &args.image || n.starts_with(&format!("{}:", args.image)))
            .or(image.names.first())
            .cloned()
            .with_context(|| {
                format!("{}: the image has no name; give a destination", args.image)
            })?,
    };
    let registry = client(&args.registry, None)?;
    let digest = registry.push(store, &image, &dest, &Lines { quiet: args.quiet })?;
    if let Some(path) = &args.digestfile {
        std::fs::write(path, &digest).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}

/// The password from -p, --password-stdin, or a prompt on the terminal.
fn password(args: &LoginArgs) -> Result<String> {
    if let Some(p) = &args.password {
        return Ok(p.clone());
    }
    let stdin = std::io::stdin();
    if args.password_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    eprint!("Password: ");
    std::io::stderr().flush()?;
    let fd = std::io::stdin();
    let saved = rustix::termios::tcgetattr(&fd)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
    rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &quiet)?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &saved)?;
    say!();
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn login(args: &LoginArgs) -> Result<i32> {
    let username = match &args.username {
        Some(u) => u.clone(),
        None if std::io::stdin().is_terminal() && !args.password_stdin => {
            eprint!("Username: ");
            std::io::stderr().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_string()
        }
        None => bail!("login {}: give the username with -u", args.server),
    };
    let password = password(args)?;
    if username.is_empty() || password.is_empty() {
        bail!(
            "login {}: the username and password must not be empty",
            args.server
        );
    }
    let registry = client(&args.registry, None)?;
    registry.check_login(&args.server, &username, &password)?;
    let file = kiln_registry::login_file(args.registry.authfile.as_deref())
        .context("no place for the auth file: set REGISTRY_AUTH_FILE or HOME")?;
    let key = args
        .server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    kiln_registry::remember_login(&file, key, &username, &password)?;
    out!("Login Succeeded!")?;
    Ok(0)
}

pub fn logout(args: &LogoutArgs) -> Result<i32> {
    let file = kiln_registry::login_file(args.authfile.as_deref())
        .context("no auth file: set REGISTRY_AUTH_FILE or HOME")?;
    if kiln_registry::logout(&file, &args.server)? {
        out!("Removed login credentials for {}", args.server)?;
        Ok(0)
    } else {
        say!("Not logged into {} (in {})", args.server, file.display());
        Ok(1)
    }
}

/// `kiln push` of a multi-platform image: its entries, then the index.
fn push_list(store: &Store, args: &PushArgs, list: &kiln_store::ImageList) -> Result<i32> {
    let dest = match &args.destination {
        Some(d) => d.clone(),
        None => list
            .names
            .iter()
            .find(|n| *n == &args.image || n.starts_with(&format!("{}:", args.image)))
            .or(list.names.first())
            .cloned()
            .with_context(|| {
                format!("{}: the image has no name; give a destination", args.image)
            })?,
    };
    let registry = client(&args.registry, None)?;
    let digest = registry.push_list(store, list, &dest, &Lines { quiet: args.quiet })?;
    if let Some(path) = &args.digestfile {
        std::fs::write(path, &digest).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}
