//! Manifest requests, made by kiln rather than oci-client, whose
//! `pull_manifest_raw` reads the whole body into memory however large it
//! is: here the body is read no further than the 4 MiB a manifest may
//! weigh, the digest in the URL is checked for its form first, and the
//! bytes are checked against the digest asked for.

use kiln_store::archive::MANIFEST_MAX;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};
use crate::limits::valid_digest;
use crate::manifest;
use crate::transport::{Failure, Session};

impl Session {
    /// The manifest `r` names (by tag or digest): its bytes, and its
    /// digest (the one asked for, else the bytes' sha256).
    pub async fn get_manifest(&self, r: &Reference) -> Result<(Vec<u8>, String)> {
        self.retry(|| self.get_manifest_once(r)).await
    }

    async fn get_manifest_once(&self, r: &Reference) -> Result<(Vec<u8>, String), Failure> {
        let target = match r.digest() {
            Some(d) if !valid_digest(d) => {
                return Err(self.bad_manifest(format!(
                    "refusing the manifest digest {d:?}: not sha256:<64 hex> or sha512:<128 hex>"
                )))
            }
            Some(d) => d,
            None => r.tag().unwrap_or("latest"),
        };
        let mut url = format!(
            "{}://{}/v2/{}/manifests/{target}",
            self.scheme,
            r.resolve_registry(),
            r.repository()
        );
        if let Some(ns) = r.namespace() {
            url.push_str(&format!("?ns={ns}"));
        }
        let mut res = self.send(&url).await?;
        if res.status() == StatusCode::UNAUTHORIZED {
            // The token may have expired since the challenge was answered.
            self.refresh_token(RegistryOperation::Pull).await?;
            res = self.send(&url).await?;
        }
        let status = res.status();
        match status.as_u16() {
            200..=299 => {}
            401 | 403 => return Err(self.unauthorized(status.to_string())),
            404 => return Err(self.not_found("manifest")),
            429 | 500..=599 => return Err(Failure::Transient(format!("HTTP {status} for {url}"))),
            _ => return Err(self.protocol(format!("HTTP {status} for {url}"))),
        }
        let header_digest = res
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let sep = if r.digest().is_some() { '@' } else { ':' };
        let name = format!("{}{sep}{target}", r.repository());
        let body = self.read_capped(&mut res, &name).await?;
        let digest = match r.digest() {
            Some(d) => d.to_string(),
            None => digest_of("sha256", &body),
        };
        // What was asked for, else what the registry says it sent.
        let check = r.digest().map(str::to_string).or(header_digest);
        if let Some(expected) = check.filter(|d| valid_digest(d)) {
            let algorithm = expected.split(':').next().unwrap_or("sha256");
            let actual = digest_of(algorithm, &body);
            if actual != expected {
                return Err(Failure::Fatal(Error::DigestMismatch {
                    reference: self.original.clone(),
                    what: "manifest",
                    expected,
                    actual,
                }));
            }
        }
        Ok((body, digest))
    }

    /// One GET of a manifest, authenticated the way oci-client would.
    async fn send(&self, url: &str) -> Result<reqwest::Response, Failure> {
        let accept = HeaderValue::from_str(&manifest::ACCEPTED.join(", "))
            .map_err(|e| self.protocol(e.to_string()))?;
        let mut req = self.http.get(url).header(ACCEPT, accept);
        let token = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        req = match (token, &self.auth) {
            (Some(t), _) => req.bearer_auth(t),
            (None, RegistryAuth::Basic(user, password)) => req.basic_auth(user, Some(password)),
            (None, _) => req,
        };
        req.send().await.map_err(|e| self.transient(&e))
    }

    /// The body, refused once it passes [`MANIFEST_MAX`] (whatever
    /// Content-Length said, or before reading if it said too much).
    async fn read_capped(
        &self,
        res: &mut reqwest::Response,
        name: &str,
    ) -> Result<Vec<u8>, Failure> {
        let too_large = |size: Option<u64>| {
            let size = size.map_or("larger than".into(), |n| format!("{n} bytes, more than"));
            self.bad_manifest(format!(
                "the manifest {name} sent by {} is {size} the {} MiB kiln accepts; refused",
                self.registry(),
                MANIFEST_MAX >> 20
            ))
        };
        if let Some(n) = res.content_length().filter(|n| *n > MANIFEST_MAX) {
            return Err(too_large(Some(n)));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| self.transient(&e))? {
            if (body.len() + chunk.len()) as u64 > MANIFEST_MAX {
                return Err(too_large(None));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn bad_manifest(&self, message: String) -> Failure {
        Failure::Fatal(Error::Manifest {
            reference: self.original.clone(),
            message,
        })
    }
}

/// `algorithm:<hex>` of `bytes` (sha256 or sha512).
fn digest_of(algorithm: &str, bytes: &[u8]) -> String {
    match algorithm {
        "sha512" => format!("sha512:{}", hex::encode(Sha512::digest(bytes))),
        _ => format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
    }
}
