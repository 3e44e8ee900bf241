//! Registry credentials, found where podman finds them, in its order:
//! `--authfile` or `$REGISTRY_AUTH_FILE` (else
//! `$XDG_RUNTIME_DIR/containers/auth.json`), then
//! `~/.config/containers/auth.json`, then `~/.docker/config.json`. Each is
//! `{"auths": {"KEY": {"auth": base64("user:password")}}}` where KEY is a
//! registry host, optionally with a repository path (the longest match
//! wins), or Docker's legacy `https://index.docker.io/v1/`.
//!
//! `kiln login` writes the first of those files (as `podman login` does).

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Credentials for one registry, and the file they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub source: PathBuf,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The file `kiln login` writes and is read first.
pub fn login_file(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d).join("containers/auth.json"));
    }
    home().map(|h| h.join(".config/containers/auth.json"))
}

/// Every file read, in order.
pub(crate) fn search_path(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = login_file(explicit).into_iter().collect();
    if let Some(h) = home() {
        for p in [".config/containers/auth.json", ".docker/config.json"] {
            let p = h.join(p);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// The key an `auths` entry names, normalised: no scheme, no trailing
/// `/`, Docker Hub's legacy names as `docker.io`.
fn normalize_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    match k.split_once('/') {
        Some(("index.docker.io" | "registry-1.docker.io", rest)) => format!("docker.io/{rest}"),
        None if matches!(k, "index.docker.io" | "registry-1.docker.io") => "docker.io".into(),
        _ => k.to_string(),
    }
}

fn decode(path: &Path, key: &str, entry: &Value) -> Result<Option<(String, String)>> {
    let bad = |message: String| Error::Config {
        path: path.to_path_buf(),
        message,
    };
    if let (Some(u), Some(p)) = (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        return Ok(Some((u.to_string(), p.to_string())));
    }
    let Some(auth) = entry.get("auth").and_then(Value::as_str) else {
        return Ok(None);
    };
    if auth.is_empty() {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| bad(format!("auths.{key:?}.auth is not base64: {e}")))?;
    let text =
        String::from_utf8(bytes).map_err(|_| bad(format!("auths.{key:?}.auth is not UTF-8")))?;
    let (u, p) = text
        .split_once(':')
        .ok_or_else(|| bad(format!("auths.{key:?}.auth is not user:password")))?;
    Ok(Some((u.to_string(), p.to_string())))
}

fn read_auths(path: &Path) -> Result<Option<Map<String, Value>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
    };
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(Some(
        v.get("auths")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    ))
}

/// Credentials for `registry/repository`: the first file with a matching
/// entry wins; within it, the longest key.
pub fn lookup(
    explicit: Option<&Path>,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>> {
    let full = format!("{registry}/{repository}");
    for path in search_path(explicit) {
        let Some(auths) = read_auths(&path)? else {
            continue;
        };
        let best = auths
            .iter()
            .map(|(k, v)| (normalize_key(k), k, v))
            .filter(|(n, _, _)| n == registry || full == *n || full.starts_with(&format!("{n}/")))
            .max_by_key(|(n, _, _)| n.len());
        if let Some((_, key, entry)) = best {
            if let Some((username, password)) = decode(&path, key, entry)? {
                return Ok(Some(Credentials {
                    username,
                    password,
                    source: path,
                }));
            }
        }
    }
    Ok(None)
}

fn write_auths(path: &Path, change: impl FnOnce(&mut Map<String, Value>) -> bool) -> Result<bool> {
    let io = |e: std::io::Error| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut doc: Value = match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Map::new()),
        Err(e) => return Err(io(e)),
    };
    let obj = doc.as_object_mut().ok_or_else(|| Error::Config {
        path: path.to_path_buf(),
        message: "not a JSON object".into(),
    })?;
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let changed = change(auths.as_object_mut().expect("made an object above"));
    if !changed {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.kiln-tmp");
    let bytes = serde_json::to_vec_pretty(&doc).expect("JSON values serialize");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(true)
}

/// Records credentials for `key` (`host[:port][/path]`) in `path`.
pub fn remember_login(path: &Path, key: &str, username: &str, password: &str) -> Result<()> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    write_auths(path, |auths| {
        auths.insert(key.to_string(), serde_json::json!({ "auth": auth }));
        true
    })?;
    Ok(())
}

/// Removes `key` from `path`; false if it was not there.
pub fn logout(path: &Path, key: &str) -> Result<bool> {
    let wanted = normalize_key(key);
    write_auths(path, |auths| {
        let before = auths.len();
        auths.retain(|k, _| normalize_key(k) != wanted);
        auths.len() != before
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_lookup_order() {
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(normalize_key("quay.io/team/"), "quay.io/team");

        let dir = std::env::temp_dir().join(format!("kiln-auth-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("auth.json");
        remember_login(&file, "127.0.0.1:5000", "alice", "pa:ss").unwrap();
        remember_login(&file, "127.0.0.1:5000/team", "bob", "x").unwrap();
        let c = lookup(Some(&file), "127.0.0.1:5000", "team/app")
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("bob", "x"));
        let c = lookup(Some(&file), "127.0.0.1:5000", "other")
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "pa:ss")
        );
        assert_eq!(c.source, file);
        assert!(lookup(Some(&file), "quay.io", "x").unwrap().is_none());
        assert!(logout(&file, "127.0.0.1:5000").unwrap());
        assert!(!logout(&file, "127.0.0.1:5000").unwrap());
        let c = lookup(Some(&file), "127.0.0.1:5000", "other").unwrap();
        assert!(c.is_none());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&file).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&file, r#"{"auths":{"h":{"auth":"!!"}}}"#).unwrap();
        assert!(lookup(Some(&file), "h", "x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
