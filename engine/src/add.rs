//! The COPY and ADD step: heredocs, local sources (the context, or a
//! `--from` stage, image or named context), and for ADD local archives
//! (unpacked), URLs and git repositories; `--link` builds the layer in an
//! empty dir, so it never depends on the stage below and is reused when
//! only that stage changed.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_dockerfile::chmod::Chmod;
use kiln_dockerfile::instructions::{Command, FileOp, Instruction};
use kiln_dockerfile::resolve::{Platform, Source};
use kiln_layer::Digest;

use serde::{Deserialize, Serialize};

use super::copy::{self, Attrs, From};
use super::dockerignore::Ignore;
use super::fsops::Root;
use super::remote::{self, Remote};
use super::share::Linker;
use super::steps::{resolve_owner, StepDirs};
use super::{cache, Builder, StageState};

/// A `--link` layer's cache entry: keyed without the stage below, so it
/// is found again when only that stage changed. Also a SOURCE_DATE_EPOCH
/// copy's (`stamp.rs`), which names the layer it was made from.
#[derive(Serialize, Deserialize)]
pub struct LinkEntry {
    pub layer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl Builder<'_> {
    pub(super) fn copy(
        &self,
        state: &mut StageState,
        op: &FileOp,
        cmd: &Command,
        add: bool,
        // Where to record the layer for `--link` reuse.
        link_key: Option<&str>,
    ) -> Result<()> {
        let Sources {
            local,
            remotes,
            exclude,
        } = sources(op, add)?;
        let dirs = StepDirs::new(self)?;
        // --link: the layer is built alone; the stage is only read for
        // --chown names.
        let merged = if op.link {
            None
        } else {
            Some(self.open_rw(state, &dirs)?)
        };
        let dst = Root::open(merged.as_ref().map_or(&dirs.upper(), |m| m.path()))?;
        let owner = self.chown(state, op, &dst, &dirs)?;
        let chmod = op.chmod.as_deref().map(Chmod::parse).transpose()?;
        let mode = chmod.as_ref();
        let mut dest = copy::absolute_dest(&op.dest, &state.workdir());
        if op.sources.len() + op.inline.len() > 1 && !dest.ends_with('/') {
            dest.push('/');
        }
        // What is not from an image or a stage belongs to root unless
        // --chown says otherwise.
        let fresh = Attrs {
            owner: owner.or(Some((0, 0))),
            mode,
        };
        if !op.inline.is_empty() {
            let inline = dirs.mount_point("inline")?;
            for doc in &op.inline {
                std::fs::write(inline.join(&doc.name), &doc.content)?;
            }
            let names: Vec<String> = op.inline.iter().map(|d| d.name.clone()).collect();
            copy::copy(
                &From::plain(&Root::open(&inline)?),
                &names,
                &dst,
                &dest,
                fresh,
            )?;
        }
        let mut linker = None;
        if !local.is_empty() {
            // Keep the source mount alive until the copy is done.
            let (root, _mount) = match &op.from {
                Some(from) => {
                    let source = self.source_root(from, cmd, state, &dirs)?;
                    let root = Root::open(&source.dir)?;
                    if !source.layers.is_empty() {
                        linker = Some(Linker::new(&source.layers, &root, &dst)?);
                    }
                    (root, source.mount)
                }
                None => (self.context_root()?, None),
            };
            let from = From {
                root: &root,
                exclude: exclude.as_ref(),
                parents: op.parents,
                linker: linker.as_ref(),
            };
            // Entries from a stage keep their owners unless --chown says
            // otherwise.
            let attrs = if op.from.is_some() {
                Attrs { owner, mode }
            } else {
                fresh
            };
            let to = Target {
                dst: &dst,
                dest: &dest,
                attrs,
            };
            let unpack = add && op.unpack.unwrap_or(op.from.is_none());
            copy_local(&from, local, unpack, &to, owner)?;
        }
        let to = Target {
            dst: &dst,
            dest: &dest,
            attrs: fresh,
        };
        for (source, remote) in &remotes {
            self.copy_remote(op, source, remote, exclude.as_ref(), &to)?;
        }
        drop(dst);
        if let Some(merged) = merged {
            merged.finish(&dirs.upper())?;
        }
        if let Some(linker) = &linker {
            linker
                .apply(&dirs.upper())
                .context("linking the files COPY --from takes unchanged")?;
        }
        let layer = self.commit(state, &dirs)?;
        if let (Some(key), Some(layer)) = (link_key, &layer) {
            let entry = LinkEntry {
                layer: layer.to_string(),
                from: None,
            };
            self.store.cache_put(key, &serde_json::to_vec(&entry)?)?;
        }
        self.history(state, cmd, layer);
        // A --link layer was made beside the stage's dir, not in it: the
        // dir lacks it and is made again when next needed.
        if !op.link {
            self.rootfs_done(state);
        }
        Ok(())
    }

    /// The `--link` layer stored under `key`, if it is still there.
    pub(super) fn linked(&self, key: &str) -> Result<Option<Digest>> {
        let Some(bytes) = self.store.cache_get(key)? else {
            return Ok(None);
        };
        let layer = serde_json::from_slice::<LinkEntry>(&bytes)
            .ok()
            .and_then(|e| Digest::parse(&e.layer).ok());
        Ok(layer.filter(|d| self.store.has_layer(d)))
    }

    /// `--chown`, resolved against the stage's passwd and group files.
    fn chown(
        &self,
        state: &StageState,
        op: &FileOp,
        dst: &Root,
        dirs: &StepDirs,
    ) -> Result<Option<(u32, u32)>> {
        let Some(spec) = &op.chown else {
            return Ok(None);
        };
        if !op.link || numeric_owner(spec) {
            return resolve_owner(dst, spec).map(Some);
        }
        let lowers = self.lowers(state)?;
        let view = dirs.mount_point("stage")?;
        let _mount = if lowers.is_empty() {
            None
        } else {
            Some(
                self.read_view(&lowers, &view)
                    .context("mounting the stage read-only")?,
            )
        };
        resolve_owner(&Root::open(&view)?, spec).map(Some)
    }

    /// An ADD source that is a URL's file or a git repository.
    fn copy_remote(
        &self,
        op: &FileOp,
        source: &str,
        remote: &Remote,
        exclude: Option<&Ignore>,
        to: &Target<'_>,
    ) -> Result<()> {
        let Target { dst, dest, attrs } = *to;
        match remote {
            Remote::Url(url) => {
                let file = self.url_file(url)?;
                if let Some(sum) = &op.checksum {
                    if !sum.eq_ignore_ascii_case(&file.digest) {
                        bail!(
                            "ADD {url}: checksum mismatch: --checksum={sum} but the download is {}",
                            file.digest
                        );
                    }
                }
                let root = Root::open(&file.dir)?;
                let name = PathBuf::from(&file.name);
                // Remote archives are files unless --unpack=true.
                if op.unpack == Some(true) && is_archive(&root, &name) {
                    let dir = if dest.ends_with('/') {
                        dest.to_string()
                    } else {
                        format!("{dest}/")
                    };
                    return unpack_into(&root, &name, dst, &dir, attrs.owner)
                        .with_context(|| format!("ADD {url}: unpacking"));
                }
                copy::copy(
                    &From::plain(&root),
                    std::slice::from_ref(&file.name),
                    dst,
                    dest,
                    attrs,
                )?;
            }
            Remote::Git(git) => {
                let commit = self.pinned_commit(git, op.checksum.as_deref())?;
                let dir = self.git_checkout(git, &commit, op.keep_git_dir)?;
                let sub = remote::subdir_path(git.subdir.as_deref())
                    .with_context(|| format!("ADD {source}"))?;
                let root = Root::open(&dir)?;
                let from = From {
                    exclude,
                    ..From::plain(&root)
                };
                let mut dir_dest = dest.to_string();
                if !dir_dest.ends_with('/') {
                    dir_dest.push('/');
                }
                copy::copy(&from, &[sub], dst, &dir_dest, attrs)
                    .with_context(|| format!("ADD {source}"))?;
            }
        }
        Ok(())
    }

    /// The cache identity of a COPY/ADD's sources: their content (local
    /// files, a URL's download or its --checksum, a git commit) or the
    /// `--from` stage's key.
    /// `files` gets the context files read, each with its digest; a
    /// `--from` image is read for `platform`, the stage's.
    pub(super) fn sources_key(
        &self,
        op: &FileOp,
        cmd: &Command,
        add: bool,
        platform: &Platform,
        files: &std::sync::Mutex<Vec<(String, String)>>,
    ) -> Result<String> {
        if let Some(from) = &op.from {
            return match self.source_of_from(from, cmd) {
                Some(Source::Stage(stage)) => self.stage_sources_key(op, add, from, stage),
                source => self.key_of_source(from, source, platform),
            };
        }
        let Sources {
            local,
            remotes,
            exclude,
        } = sources(op, add)?;
        let mut key = String::new();
        if !local.is_empty() {
            let root = self.context_root()?;
            let from = From {
                root: &root,
                exclude: exclude.as_ref(),
                parents: op.parents,
                linker: None,
            };
            key =
                cache::sources_files(&from, &local, &self.memo, cache::Owners::Reset, Some(files))?;
        }
        for (_, remote) in remotes {
            key.push('|');
            key.push_str(&match remote {
                Remote::Url(url) => match &op.checksum {
                    // Pinned: no download needed to know the content.
                    Some(sum) => format!("{url} {sum}"),
                    None => {
                        let f = self.url_file(&url)?;
                        let mtime = f.mtime.map_or("none".into(), |t| t.to_string());
                        format!("{url} {} {} {mtime}", f.digest, f.name)
                    }
                },
                // Checked here too: a cached step never reaches the copy.
                Remote::Git(git) => format!(
                    "{} {}",
                    git.url,
                    self.pinned_commit(&git, op.checksum.as_deref())?
                ),
            });
        }
        Ok(key)
    }
}

impl Builder<'_> {
    /// The key of a COPY/ADD from stage `stage`: what it reads there
    /// (`content_key.rs`).
    fn stage_sources_key(
        &self,
        op: &FileOp,
        add: bool,
        from: &str,
        stage: usize,
    ) -> Result<String> {
        let Sources { local, exclude, .. } = sources(op, add)?;
        let rules = super::canon::Enc::new("copy")
            .strs(&local)
            .strs(&op.exclude)
            .flag(op.parents)
            .bytes();
        let what = [b"copy".as_slice(), &rules];
        self.stage_content_digest(from, stage, &what, |root, memo| {
            let from = From {
                root,
                exclude: exclude.as_ref(),
                parents: op.parents,
                linker: None,
            };
            cache::sources_digest(&from, &local, memo, cache::Owners::Kept)
        })
    }
}

/// The instruction as its step's cache key sees it: a git source's
/// `--checksum` only confirms the commit, which the key holds already, so
/// pinning a source keeps its cached step (as in BuildKit).
pub(super) fn keyed(instruction: &Instruction) -> Cow<'_, Instruction> {
    match instruction {
        Instruction::Add(op)
            if op.checksum.is_some()
                && op
                    .sources
                    .iter()
                    .any(|s| matches!(remote::classify(s), Some(Remote::Git(_)))) =>
        {
            Cow::Owned(Instruction::Add(FileOp {
                checksum: None,
                ..op.clone()
            }))
        }
        _ => Cow::Borrowed(instruction),
    }
}

/// A COPY/ADD's sources, sorted out.
struct Sources {
    /// Paths in the context or the `--from` root.
    local: Vec<String>,
    /// ADD's URLs and git repositories, as written and as understood.
    remotes: Vec<(String, Remote)>,
    /// `--exclude`.
    exclude: Option<Ignore>,
}

/// Sorts out `op`'s sources; errors for what COPY and `--checksum` do
/// not take.
fn sources(op: &FileOp, add: bool) -> Result<Sources> {
    if !add {
        if let Some(s) = op.sources.iter().find(|s| s.contains("://")) {
            bail!("COPY {s}: a source cannot be a URL; use ADD");
        }
    }
    let (mut local, mut remotes) = (Vec::new(), Vec::new());
    for s in &op.sources {
        match remote::classify(s).filter(|_| add) {
            Some(r) => remotes.push((s.clone(), r)),
            None => local.push(s.clone()),
        }
    }
    if let Some(sum) = &op.checksum {
        match remotes.as_slice() {
            [(_, Remote::Url(_))] if local.is_empty() => {
                if !sum.starts_with("sha256:") {
                    bail!("invalid checksum {sum:?} for a URL: expected sha256:<64 hex digits>");
                }
            }
            // The frontend took only hex digits or a sha256: digest.
            [(_, Remote::Git(_))] if local.is_empty() => {
                if sum.contains(':') {
                    bail!(
                        "invalid checksum {sum:?} for a git repository: expected hex commit hash"
                    );
                }
            }
            _ => {
                bail!("ADD --checksum takes exactly one source, an http(s) URL or a git repository")
            }
        }
    }
    let exclude = match op.exclude.as_slice() {
        [] => None,
        patterns => Some(Ignore::parse(&patterns.join("\n")).context("--exclude")?),
    };
    Ok(Sources {
        local,
        remotes,
        exclude,
    })
}

/// Where a COPY writes, and how.
#[derive(Clone, Copy)]
struct Target<'a> {
    dst: &'a Root,
    /// Absolute inside `dst`.
    dest: &'a str,
    attrs: Attrs<'a>,
}

/// Local sources; with `unpack` (ADD), archives are unpacked into the
/// destination, their entries owned as in the archive unless `chown`.
fn copy_local(
    from: &From<'_>,
    mut sources: Vec<String>,
    unpack: bool,
    to: &Target<'_>,
    chown: Option<(u32, u32)>,
) -> Result<()> {
    if unpack {
        let (archives, rest) = split_archives(from, &sources)?;
        for rel in archives {
            unpack_into(from.root, &rel, to.dst, to.dest, chown)
                .with_context(|| format!("ADD {}: unpacking", rel.display()))?;
        }
        sources = rest;
    }
    if !sources.is_empty() {
        copy::copy(from, &sources, to.dst, to.dest, to.attrs)?;
    }
    Ok(())
}

/// Whether a `--chown` value is numbers only, so it needs no passwd file.
pub(super) fn numeric_owner(spec: &str) -> bool {
    spec.split(':').all(|p| p.parse::<u32>().is_ok())
}

/// Splits ADD sources into local archives (by content: a tar, compressed
/// or not) and the rest, which are copied as files.
fn split_archives(from: &From<'_>, sources: &[String]) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let mut archives = Vec::new();
    let mut rest = Vec::new();
    for s in sources {
        let matched = copy::select(from, std::slice::from_ref(s))?;
        if matched.iter().all(|m| is_archive(from.root, &m.rel)) {
            archives.extend(matched.into_iter().map(|m| m.rel));
        } else {
            rest.push(s.clone());
        }
    }
    Ok((archives, rest))
}

fn is_archive(src: &Root, rel: &Path) -> bool {
    let Ok(fd) = src.resolve(rel, rustix::fs::OFlags::RDONLY, true) else {
        return false;
    };
    let mut head = [0u8; 512];
    let mut f = std::fs::File::from(fd);
    let n = std::io::Read::read(&mut f, &mut head).unwrap_or(0);
    let head = &head[..n];
    match kiln_layer::Format::detect(head) {
        kiln_layer::Format::Tar => n >= 262 && &head[257..262] == b"ustar",
        _ => true,
    }
}

/// Unpacks the archive `rel` of `src` into the directory `dest` of `dst`.
fn unpack_into(
    src: &Root,
    rel: &Path,
    dst: &Root,
    dest: &str,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let dir = dst.mkdir_all(
        &super::fsops::relative(Path::new(dest)),
        0o755,
        owner.unwrap_or((0, 0)),
    )?;
    // The directory by fd: a path through the rootfs could follow a
    // symlink out of it, /proc/self/fd/N cannot.
    let root = super::fsops::proc_path(std::os::fd::AsFd::as_fd(&dir));
    let file = src.resolve(rel, rustix::fs::OFlags::RDONLY, true)?;
    let mut input = std::io::BufReader::new(std::fs::File::from(file));
    let opts = kiln_layer::UnpackOptions {
        owner,
        ..Default::default()
    };
    let unpacked = kiln_layer::unpack(&mut input, &root, &opts)?;
    for w in unpacked.warnings {
        say!("kiln: warning: ADD {}: {w}", rel.display());
    }
    Ok(())
}
