//! kiln-registry: pulls images from OCI/Docker registries into kiln's
//! store and pushes stored images out, the way podman does: Docker-style
//! short names, OCI and Docker v2 manifests, indexes resolved to one
//! platform, bearer-token and basic auth from the containers/Docker auth
//! files, mirrors and insecure registries from `registries.conf`. It is
//! also kiln's one HTTP client: `ADD <url>` downloads through it.
//!
//! The HTTP and token work is `oci-client`'s (async, on a tokio runtime
//! this crate owns); what it adds is the store side: every blob is
//! streamed to `oci/blobs` and verified before it is renamed in, layers
//! are unpacked by `kiln-store` (which checks the config's diffIDs), and an
//! image is named only once all of it is stored, so a failed pull leaves
//! nothing half-stored. A blob the store has is never fetched again.
//!
//! Fork safety: the runtime's threads exist only in the kiln process,
//! which starts sandbox steps through its single-threaded zygote, never by
//! forking itself.
//!
//! ```no_run
//! # fn main() -> Result<(), kiln_registry::Error> {
//! let store = kiln_store::Store::open(std::path::Path::new("/tmp/store"))?;
//! let registry = kiln_registry::Registry::new(kiln_registry::Options::default())?;
//! let pulled = registry.pull(&store, "alpine:3.20", &kiln_registry::Silent)?;
//! registry.push(&store, &pulled.image, "127.0.0.1:5000/alpine:3.20", &kiln_registry::Silent)?;
//! # Ok(()) }
//! ```

mod artifact;
mod auth;
mod conf;
mod error;
mod http;
mod limits;
mod login;
mod manifest;
mod manifest_get;
mod platform;
mod progress;
mod pull;
mod push;
mod push_list;
mod reference;
mod roots;
mod transport;
mod workers;

pub use artifact::{Artifact, BlobRef, MountSources, NewArtifact, ARTIFACT_CONFIG_MAX};
pub use auth::{login_file, logout, remember_login, Credentials};
pub use conf::RegistriesConf;
pub use error::{Error, Result};
pub use http::Download;
pub use limits::{valid_digest, TIMEOUT_VAR, URL_MAX_VAR};
pub use platform::Platform;
pub use progress::{Events, Silent};
pub use pull::Pulled;
pub use reference::{normalize, store_names};

use std::path::PathBuf;
use std::sync::OnceLock;

/// How to reach registries.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Hosts (`host[:port]`) spoken to over plain HTTP, besides loopback
    /// ones and those `registries.conf` marks `insecure`.
    pub insecure: Vec<String>,
    /// The platform chosen from an index (default: the host's).
    pub platform: Option<Platform>,
    /// `--authfile`: read (first) instead of `$REGISTRY_AUTH_FILE`.
    pub auth_file: Option<PathBuf>,
    /// `registries.conf` to use instead of the standard places.
    pub registries_conf: Option<PathBuf>,
    /// Layers transferred at once.
    pub parallel: Option<usize>,
}

/// A registry client for one kiln command.
pub struct Registry {
    opts: Options,
    conf: RegistriesConf,
    limits: limits::Limits,
    runtime: OnceLock<tokio::runtime::Runtime>,
    clients: transport::Clients,
}

impl Registry {
    /// Reads `registries.conf` and the timeouts' overrides
    /// ([`TIMEOUT_VAR`], [`URL_MAX_VAR`]); no network yet.
    pub fn new(opts: Options) -> Result<Registry> {
        let conf = match &opts.registries_conf {
            Some(p) => RegistriesConf::load_file(p)?,
            None => RegistriesConf::load()?,
        };
        Ok(Registry {
            opts,
            conf,
            limits: limits::Limits::from_env()?,
            runtime: OnceLock::new(),
            clients: transport::Clients::default(),
        })
    }

    /// The tokio runtime, started on first use (most builds never pull).
    fn runtime(&self) -> Result<&tokio::runtime::Runtime> {
        if let Some(rt) = self.runtime.get() {
            return Ok(rt);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kiln-registry")
            .enable_all()
            .build()
            .map_err(|e| Error::Io {
                what: "starting the registry client's runtime".into(),
                error: e,
            })?;
        Ok(self.runtime.get_or_init(|| rt))
    }

    fn platform(&self) -> Platform {
        self.opts.platform.clone().unwrap_or_else(Platform::host)
    }

    fn parallel(&self) -> usize {
        self.opts.parallel.unwrap_or(3).max(1)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Without this a runtime dropped while a blocking read is stuck
        // (a hung registry) would wait for it.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
