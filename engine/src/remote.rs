//! ADD's remote sources: a file from an http(s) URL, or a git repository
//! (`URL#ref:subdir`). Each is fetched at most once per build, into the
//! build's scratch dir, where COPY's code reads it like a context: a URL's
//! file alone in a dir (mode 0600, Last-Modified as its mtime), a checkout
//! as a root that nothing in the repository (symlinks, `..` in the subdir)
//! can lead out of.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use kiln_layer::DigestWriter;

use super::{lock, Builder};

/// A source of ADD that is not in the context.
#[derive(Clone, Debug, PartialEq)]
pub enum Remote {
    Url(String),
    Git(GitSource),
}

/// `URL#ref:subdir`.
#[derive(Clone, Debug, PartialEq)]
pub struct GitSource {
    pub url: String,
    pub reference: Option<String>,
    pub subdir: Option<String>,
}

/// What ADD makes of `source`: a git repository (BuildKit's forms: git://,
/// git@, ssh://, github.com/…, or an http(s) URL whose path ends in
/// `.git`), a URL, or None for a local path.
pub fn classify(source: &str) -> Option<Remote> {
    let (base, fragment) = match source.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (source, None),
    };
    let web = base.starts_with("http://") || base.starts_with("https://");
    let git = ["git://", "git@", "ssh://"]
        .iter()
        .any(|p| base.starts_with(p))
        || base.starts_with("github.com/")
        || (web && base.trim_end_matches('/').ends_with(".git"));
    if git {
        let url = if base.starts_with("github.com/") {
            format!("https://{base}")
        } else {
            base.to_string()
        };
        let (reference, subdir) = match fragment.map(|f| f.split_once(':').unwrap_or((f, ""))) {
            Some((r, s)) => (
                Some(r.to_string()).filter(|r| !r.is_empty()),
                Some(s.to_string()).filter(|s| !s.is_empty()),
            ),
            None => (None, None),
        };
        return Some(Remote::Git(GitSource {
            url,
            reference,
            subdir,
        }));
    }
    web.then(|| Remote::Url(source.to_string()))
}

/// A URL's file, downloaded: `dir` holds only it.
pub struct UrlFile {
    pub dir: PathBuf,
    pub name: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    pub mtime: Option<i64>,
}

/// Downloads and checkouts already made in this build.
#[derive(Default)]
pub struct Fetched {
    urls: Mutex<HashMap<String, Arc<UrlFile>>>,
    commits: Mutex<HashMap<(String, Option<String>), String>>,
    checkouts: Mutex<HashMap<(String, String), PathBuf>>,
}

impl Builder<'_> {
    /// The file at `url`, downloaded once per build.
    pub(super) fn url_file(&self, url: &str) -> Result<Arc<UrlFile>> {
        if let Some(f) = lock(&self.fetched.urls).get(url) {
            return Ok(f.clone());
        }
        let vertex = self.progress.start(&format!("[internal] download {url}"));
        let file = self.download(url);
        match &file {
            Ok(_) => vertex.done(),
            Err(e) => vertex.error(&format!("{e:#}")),
        }
        let file = Arc::new(file.with_context(|| format!("ADD {url}"))?);
        lock(&self.fetched.urls).insert(url.to_string(), file.clone());
        Ok(file)
    }

    fn download(&self, url: &str) -> Result<UrlFile> {
        let dir = self
            .scratch
            .path()
            .join(format!("url-{}", super::steps::unique()));
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        let partial = dir.join(".partial");
        let mut out = DigestWriter::new(
            std::fs::File::create(&partial)
                .with_context(|| format!("create {}", partial.display()))?,
        );
        let got = self.registry()?.download(url, &mut out)?;
        out.flush()?;
        let digest = out.finish().1.to_string();
        let name = got
            .disposition_name
            .as_deref()
            .and_then(file_name)
            .or_else(|| url_file_name(url))
            .unwrap_or_else(|| "__unnamed__".into());
        let path = dir.join(&name);
        std::fs::rename(&partial, &path)?;
        // Docker's mode for a downloaded file; --chmod overrides it.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let mtime = got.last_modified.as_deref().and_then(http_date);
        if let Some(t) = mtime {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
            std::fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(t)?;
        }
        Ok(UrlFile {
            dir,
            name,
            digest,
            mtime,
        })
    }

    /// The commit `src`'s ref names now (a full commit id is taken as is).
    pub(super) fn git_commit(&self, src: &GitSource) -> Result<String> {
        let key = (src.url.clone(), src.reference.clone());
        if let Some(c) = lock(&self.fetched.commits).get(&key) {
            return Ok(c.clone());
        }
        let commit = resolve_commit(src).context("ADD")?;
        lock(&self.fetched.commits).insert(key, commit.clone());
        Ok(commit)
    }

    /// The commit of `src`, which must start with `checksum` when ADD
    /// pins it with `--checksum` (a commit hash or a prefix of one, as
    /// BuildKit takes it).
    pub(super) fn pinned_commit(&self, src: &GitSource, checksum: Option<&str>) -> Result<String> {
        let commit = self.git_commit(src)?;
        if let Some(sum) = checksum {
            if !commit.starts_with(&sum.to_ascii_lowercase()) {
                bail!(
                    "ADD {}: expected checksum to match {sum}, got {commit}",
                    src.url
                );
            }
        }
        Ok(commit)
    }

    /// A checkout of `commit` of `src.url` (without `.git` unless
    /// `keep_git_dir`), made once per build.
    pub(super) fn git_checkout(
        &self,
        src: &GitSource,
        commit: &str,
        keep_git_dir: bool,
    ) -> Result<PathBuf> {
        let key = (src.url.clone(), format!("{commit}:{keep_git_dir}"));
        if let Some(dir) = lock(&self.fetched.checkouts).get(&key) {
            return Ok(dir.clone());
        }
        let vertex = self
            .progress
            .start(&format!("[internal] git {} {commit}", src.url));
        let dir = self
            .scratch
            .path()
            .join(format!("git-{}", super::steps::unique()));
        let made = checkout(&src.url, commit, &dir, keep_git_dir);
        match &made {
            Ok(()) => vertex.done(),
            Err(e) => vertex.error(&format!("{e:#}")),
        }
        made.with_context(|| format!("ADD {}: checking out {commit}", src.url))?;
        lock(&self.fetched.checkouts).insert(key, dir.clone());
        Ok(dir)
    }
}

/// The commit `src`'s ref names now (a full commit id is taken as is).
fn resolve_commit(src: &GitSource) -> Result<String> {
    let wanted = src.reference.as_deref().unwrap_or("HEAD");
    // Neither may pass for an option of git's.
    if src.url.starts_with('-') || wanted.starts_with('-') {
        bail!(
            "{}#{wanted}: a git URL or ref may not start with '-'",
            src.url
        );
    }
    if is_commit_id(wanted) {
        return Ok(wanted.to_ascii_lowercase());
    }
    let listing = git(None, &["ls-remote", &src.url, wanted])
        .with_context(|| format!("{}: listing its refs", src.url))?;
    pick_ref(&listing, wanted)
        .filter(|id| is_commit_id(id))
        .ok_or_else(|| anyhow!("{}: no branch or tag {wanted:?} in the repository", src.url))
}

/// A checkout of what `src` names, without `.git`, made in the new
/// directory `dir` (a build context given as a git URL).
pub fn fetch_git(src: &GitSource, dir: &Path) -> Result<()> {
    let commit = resolve_commit(src)?;
    checkout(&src.url, &commit, dir, false)
        .with_context(|| format!("{}: checking out {commit}", src.url))
}

fn checkout(url: &str, commit: &str, dir: &Path, keep_git_dir: bool) -> Result<()> {
    std::fs::create_dir(dir).with_context(|| format!("create {}", dir.display()))?;
    // A repository of sha256 objects (64-digit ids) only fetches into one.
    let format = if commit.len() == 64 {
        "--object-format=sha256"
    } else {
        "--object-format=sha1"
    };
    git(Some(dir), &["init", "-q", format])?;
    git(Some(dir), &["remote", "add", "origin", url])?;
    // Smart servers hand out one commit; dumb ones (and servers refusing
    // unadvertised ids) need the whole history.
    if git(Some(dir), &["fetch", "-q", "--depth=1", "origin", commit]).is_err() {
        git(
            Some(dir),
            &[
                "fetch",
                "-q",
                "--tags",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
            ],
        )?;
    }
    git(Some(dir), &["checkout", "-q", "--detach", commit])?;
    if !keep_git_dir {
        std::fs::remove_dir_all(dir.join(".git")).context("removing .git")?;
    }
    Ok(())
}

/// Runs git with prompts off and the `ext::` transport (which runs
/// commands) refused; its stdout, or an error with its last words.
fn git(dir: Option<&Path>, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("git");
    cmd.args([
        "-c",
        "protocol.ext.allow=never",
        "-c",
        "advice.detachedHead=false",
    ])
    .args(args)
    .env("GIT_TERMINAL_PROMPT", "0")
    .stdin(Stdio::null());
    // The caller's repository settings must not redirect the checkout.
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
    ] {
        cmd.env_remove(var);
    }
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!("a git repository (ADD, or a git URL context) needs git installed (apt-get install git)")
        } else {
            anyhow!("running git: {e}")
        }
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = err.lines().rev().take(3).collect();
        bail!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            last.into_iter().rev().collect::<Vec<_>>().join("; ")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_commit_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit `wanted` names in `git ls-remote` output: a branch, or a
/// tag (its peeled `^{}` line when annotated).
fn pick_ref(listing: &str, wanted: &str) -> Option<String> {
    let lines: Vec<(&str, &str)> = listing.lines().filter_map(|l| l.split_once('\t')).collect();
    let names = [
        wanted.to_string(),
        format!("refs/heads/{wanted}"),
        format!("refs/tags/{wanted}"),
    ];
    for name in &names {
        let peeled = format!("{name}^{{}}");
        if let Some((id, _)) = lines.iter().find(|(_, r)| *r == peeled) {
            return Some(id.to_string());
        }
        if let Some((id, _)) = lines.iter().find(|(_, r)| r == name) {
            return Some(id.to_string());
        }
    }
    None
}

/// A subdir of a checkout as a path below it; `..` is refused (symlinks
/// are resolved inside the checkout by the copy itself).
pub fn subdir_path(subdir: Option<&str>) -> Result<String> {
    let Some(s) = subdir else {
        return Ok(".".into());
    };
    if Path::new(s)
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        bail!("the git subdir {s:?} leads out of the repository");
    }
    Ok(s.trim_start_matches('/').to_string())
}

/// A server-given file name, if it is one name (no path).
fn file_name(name: &str) -> Option<String> {
    let ok = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']);
    ok.then(|| name.to_string())
}

/// The last segment of a URL's path.
fn url_file_name(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split(['?', '#']).next()?;
    let (_, path) = path.split_once('/')?;
    file_name(path.rsplit('/').next()?)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds.
fn http_date(s: &str) -> Option<i64> {
    let f: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = f.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? as i64 + 1;
    let (d, y): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [hh, mm, ss] = t.as_slice() else {
        return None;
    };
    // Days from 1970-01-01 to y-m-d (proleptic Gregorian).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_sources() {
        assert_eq!(classify("src/"), None);
        assert_eq!(
            classify("https://example.com/a.tar.gz"),
            Some(Remote::Url("https://example.com/a.tar.gz".into()))
        );
        assert_eq!(
            classify("https://example.com/r.git#v1:docs"),
            Some(Remote::Git(GitSource {
                url: "https://example.com/r.git".into(),
                reference: Some("v1".into()),
                subdir: Some("docs".into()),
            }))
        );
        assert_eq!(
            classify("github.com/moby/buildkit#:frontend"),
            Some(Remote::Git(GitSource {
                url: "https://github.com/moby/buildkit".into(),
                reference: None,
                subdir: Some("frontend".into()),
            }))
        );
        assert!(matches!(
            classify("git@github.com:a/b.git"),
            Some(Remote::Git(_))
        ));
    }

    #[test]
    fn names_and_dates() {
        assert_eq!(
            url_file_name("http://h:1/a/b.txt?x=1").as_deref(),
            Some("b.txt")
        );
        assert_eq!(url_file_name("http://h/"), None);
        assert_eq!(file_name("../x"), None);
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date("yesterday"), None);
    }

    #[test]
    fn refs_and_subdirs() {
        let listing = "aaa\tHEAD\nbbb\trefs/heads/main\nccc\trefs/tags/v1\nddd\trefs/tags/v1^{}\n";
        assert_eq!(pick_ref(listing, "main").as_deref(), Some("bbb"));
        assert_eq!(pick_ref(listing, "v1").as_deref(), Some("ddd"));
        assert_eq!(pick_ref(listing, "HEAD").as_deref(), Some("aaa"));
        assert_eq!(pick_ref(listing, "nope"), None);
        assert!(subdir_path(Some("../../etc")).is_err());
        assert!(subdir_path(Some("a/../../b")).is_err());
        assert_eq!(subdir_path(Some("/docs")).unwrap(), "docs");
        assert_eq!(subdir_path(None).unwrap(), ".");
    }
}
