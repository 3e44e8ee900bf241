//! `kiln-sandbox-run`: a small command-line front end to kiln-sandbox, so
//! the crate can be exercised and tested on its own.
//!
//! ```text
//! kiln-sandbox-run run --lower DIR… --upper DIR --work DIR [options] -- CMD [ARG…]
//!     --lower DIR        a lower dir, top first (repeat)
//!     --lowers-file F    lower dirs, one per line, top first
//!     --bind SRC:DST     read-write bind mount   --bind-ro SRC:DST  read-only
//!     --tmpfs DST        a tmpfs                 --env K=V          (repeat)
//!     --cwd DIR          --user USER[:GROUP]     --network host|none|private
//!     --hostname NAME    --stdin-null
//!     --security-opt seccomp=unconfined|no-new-privileges
//! kiln-sandbox-run rm PATH…        delete paths from inside the user namespace
//! kiln-sandbox-run userns          print the uid/gid maps in effect
//! kiln-sandbox-run bench --lower DIR… --scratch DIR [--iterations N]
//! ```
//! Exit status: the command's, or 125 when the sandbox itself failed.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kiln_sandbox::{Io, Mount, Network, Spec, UserNamespace};

fn usage() -> ! {
    eprintln!("usage: kiln-sandbox-run run|rm|userns|bench … (see the source header)");
    std::process::exit(125)
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("kiln-sandbox-run: {msg}");
    std::process::exit(125)
}

struct Opts {
    spec: Spec,
    scratch: Option<PathBuf>,
    iterations: usize,
}

fn split_pair(v: &str) -> (PathBuf, PathBuf) {
    match v.split_once(':') {
        Some((a, b)) => (a.into(), b.into()),
        None => fail(format!("expected SRC:DST, got {v:?}")),
    }
}

fn parse(args: &mut impl Iterator<Item = OsString>) -> Opts {
    let mut spec = Spec::new(Vec::new(), "", "", Vec::new());
    let mut scratch = None;
    let mut iterations = 200;
    while let Some(a) = args.next() {
        let a = a.to_string_lossy().into_owned();
        if a == "--" {
            spec.argv = args.collect();
            break;
        }
        let mut val = || -> String {
            args.next()
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_else(|| fail(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--lower" => spec.lowers.push(val().into()),
            "--lowers-file" => {
                let f = val();
                let text =
                    std::fs::read_to_string(&f).unwrap_or_else(|e| fail(format!("{f}: {e}")));
                spec.lowers
                    .extend(text.lines().filter(|l| !l.is_empty()).map(PathBuf::from));
            }
            "--upper" => spec.upper = val().into(),
            "--work" => spec.work = val().into(),
            "--bind" | "--bind-ro" => {
                let (source, target) = split_pair(&val());
                spec.mounts.push(Mount::Bind {
                    source,
                    target,
                    readonly: a == "--bind-ro",
                });
            }
            "--tmpfs" => spec.mounts.push(Mount::Tmpfs {
                target: val().into(),
                size: None,
                mode: 0o1777,
            }),
            "--env" => spec.env.push(val().into()),
            "--cwd" => spec.cwd = val().into(),
            "--user" => spec.user = kiln_sandbox::User::Named(val()),
            "--network" => {
                spec.network = match val().as_str() {
                    "host" => Network::Host,
                    "none" => Network::None,
                    "private" => {
                        kiln_sandbox::private_network().unwrap_or_else(|e| fail(e.to_string()));
                        Network::Private
                    }
                    n => fail(format!("unknown network {n:?}")),
                }
            }
            "--hostname" => spec.hostname = val(),
            "--security-opt" => match val().as_str() {
                "seccomp=unconfined" => spec.seccomp = kiln_sandbox::Seccomp::Unconfined,
                "no-new-privileges" => spec.no_new_privileges = true,
                o => fail(format!("unknown security option {o:?}")),
            },
            "--stdin-null" => spec.stdio.stdin = Io::Null,
            "--scratch" => scratch = Some(PathBuf::from(val())),
            "--iterations" => iterations = val().parse().unwrap_or_else(|_| usage()),
            _ => fail(format!("unknown option {a:?}")),
        }
    }
    Opts {
        spec,
        scratch,
        iterations,
    }
}

fn main() -> ExitCode {
    // Must come first: every step re-executes this binary as its init.
    kiln_sandbox::dispatch_init();
    let ns = UserNamespace::enter().unwrap_or_else(|e| fail(e));
    let mut args = std::env::args_os().skip(1);
    let cmd = args.next().map(|c| c.to_string_lossy().into_owned());
    match cmd.as_deref() {
        Some("run") => {
            let opts = parse(&mut args);
            match kiln_sandbox::run(&opts.spec) {
                Ok(st) => ExitCode::from(st.code() as u8),
                Err(e) => fail(e),
            }
        }
        Some("rm") => {
            let mut code = 0;
            for p in args {
                let r = match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
                    Ok(_) => std::fs::remove_file(&p),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    eprintln!("kiln-sandbox-run: rm {}: {e}", PathBuf::from(&p).display());
                    code = 1;
                }
            }
            ExitCode::from(code)
        }
        Some("userns") => {
            println!("{ns:?}");
            for f in ["uid_map", "gid_map"] {
                print!(
                    "{f}: {}",
                    std::fs::read_to_string(format!("/proc/self/{f}")).unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Some("bench") => {
            bench(parse(&mut args));
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

fn median_ms(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.1), at(0.9))
}

/// Median wall time of `run` for /bin/true over the given lowers, next to
/// `unshare --user --map-root-user --mount --pid --fork true`.
fn bench(opts: Opts) {
    let scratch = opts
        .scratch
        .unwrap_or_else(|| fail("bench needs --scratch DIR"));
    let n = opts.iterations.max(1);
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 5 {
        let upper = scratch.join(format!("u{i}"));
        let work = scratch.join(format!("w{i}"));
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| fail(format!("{}: {e}", d.display())));
        }
        let mut spec = Spec::new(
            opts.spec.lowers.clone(),
            &upper,
            &work,
            vec!["/bin/true".into()],
        );
        spec.stdio.stdin = Io::Null;
        spec.seccomp = opts.spec.seccomp.clone();
        spec.network = opts.spec.network;
        let t = Instant::now();
        let st = kiln_sandbox::run(&spec).unwrap_or_else(|e| fail(e));
        let dt = t.elapsed();
        if !st.success() {
            fail(format!("/bin/true returned {st}"));
        }
        if i >= 5 {
            times.push(dt); // the first runs warm caches
        }
        let _ = std::fs::remove_dir_all(&upper);
        let _ = std::fs::remove_dir_all(&work);
    }
    let (m, p10, p90) = median_ms(times);
    println!(
        "kiln-sandbox run /bin/true, {} lower(s): median {m:.2} ms (p10 {p10:.2}, p90 {p90:.2}) over {n} runs",
        opts.spec.lowers.len()
    );
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let st = std::process::Command::new("unshare")
            .args([
                "--user",
                "--map-root-user",
                "--mount",
                "--pid",
                "--fork",
                "true",
            ])
            .status()
            .unwrap_or_else(|e| fail(format!("unshare: {e}")));
        times.push(t.elapsed());
        if !st.success() {
            fail("unshare failed");
        }
    }
    let (m, p10, p90) = median_ms(times);
    println!(
        "unshare --user --map-root-user --mount --pid --fork true: median {m:.2} ms (p10 {p10:.2}, p90 {p90:.2}) over {n} runs"
    );
}
