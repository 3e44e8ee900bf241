//! One conversation with one registry: the oci-client for it (plain HTTP
//! only where allowed), its credentials, retries with backoff for what a
//! retry can fix, and oci-client's errors turned into kiln's.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::auth::{self, Credentials};
use crate::conf::Endpoint;
use crate::error::{Error, Result};

/// Attempts for an operation that fails for a reason a retry may fix (the
/// registry down, a dropped connection, 5xx, 429).
const ATTEMPTS: u32 = 4;
const FIRST_DELAY: Duration = Duration::from_millis(250);

pub(crate) struct Session {
    pub client: Client,
    /// The reference as this endpoint names it (a mirror's, or the
    /// primary location's).
    pub reference: Reference,
    pub auth: RegistryAuth,
    creds: Option<Credentials>,
    auth_file: Option<std::path::PathBuf>,
    /// The reference as the user wrote it (for messages).
    pub original: String,
}

/// An operation's failure: worth another attempt, or final.
pub(crate) enum Failure {
    Transient(String),
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Fatal(e)
    }
}

impl From<kiln_store::Error> for Failure {
    fn from(e: kiln_store::Error) -> Failure {
        Failure::Fatal(e.into())
    }
}

/// An error with its causes, one line (reqwest's own message omits them).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

impl Session {
    pub fn new(endpoint: &Endpoint, original: &str, auth_file: Option<&Path>) -> Result<Session> {
        let r = &endpoint.reference;
        let host = r.resolve_registry().to_string();
        let config = ClientConfig {
            protocol: if endpoint.insecure {
                ClientProtocol::HttpsExcept(vec![host])
            } else {
                ClientProtocol::Https
            },
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("kiln/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| Error::Protocol {
            registry: r.registry().to_string(),
            message: format!("setting up the HTTP client: {}", chain(&e)),
        })?;
        let creds = auth::lookup(auth_file, r.registry(), r.repository())?;
        let auth = match &creds {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        Ok(Session {
            client,
            reference: r.clone(),
            auth,
            creds,
            auth_file: auth_file.map(Path::to_path_buf),
            original: original.to_string(),
        })
    }

    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// Answers the registry's auth challenge once, up front, so a refused
    /// token request is reported as such.
    pub async fn authenticate(&self, op: RegistryOperation) -> Result<()> {
        self.retry(|| async {
            self.client
                .auth(&self.reference, &self.auth, op)
                .await
                .map(|_| ())
                .map_err(|e| self.failure(e, "registry"))
        })
        .await
    }

    /// Runs `op` until it succeeds, fails for good, or has failed
    /// transiently [`ATTEMPTS`] times (waiting 0.25 s, 0.5 s, 1 s between).
    pub async fn retry<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut delay = FIRST_DELAY;
        for attempt in 1..=ATTEMPTS {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(detail)) if attempt == ATTEMPTS => {
                    return Err(Error::Unreachable {
                        registry: self.registry().to_string(),
                        attempts: ATTEMPTS,
                        detail,
                    })
                }
                Err(Failure::Transient(_)) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// What the user was told about credentials, for a 401/403.
    fn tried(&self) -> String {
        match &self.creds {
            Some(c) => format!(
                "tried the credentials of {:?} from {}",
                c.username,
                c.source.display()
            ),
            None => {
                let files: Vec<String> = auth::search_path(self.auth_file.as_deref())
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                format!("no credentials for it in {}", files.join(", "))
            }
        }
    }

    fn unauthorized(&self, status: String) -> Failure {
        Failure::Fatal(Error::Unauthorized {
            registry: self.registry().to_string(),
            reference: self.original.clone(),
            status,
            tried: self.tried(),
        })
    }

    fn not_found(&self, what: &'static str) -> Failure {
        Failure::Fatal(Error::NotFound {
            reference: self.original.clone(),
            registry: self.registry().to_string(),
            what,
        })
    }

    fn protocol(&self, message: String) -> Failure {
        Failure::Fatal(Error::Protocol {
            registry: self.registry().to_string(),
            message,
        })
    }

    /// Classifies an oci-client error; `what` says what was asked for
    /// (`manifest`, `blob`) for a 404.
    pub fn failure(&self, e: OciDistributionError, what: &'static str) -> Failure {
        match e {
            OciDistributionError::RequestError(ref r) => match r.status() {
                Some(s) if s.as_u16() == 401 || s.as_u16() == 403 => {
                    self.unauthorized(s.to_string())
                }
                Some(s) if s.as_u16() == 404 => self.not_found(what),
                Some(s) if s.is_client_error() && s.as_u16() != 429 => self.protocol(chain(&e)),
                _ => Failure::Transient(chain(&e)),
            },
            OciDistributionError::IoError(ref io) => Failure::Transient(chain(io)),
            OciDistributionError::ServerError {
                code, ref message, ..
            } => match code {
                401 | 403 => self.unauthorized(format!("HTTP {code}")),
                404 => self.not_found(what),
                429 | 500..=599 => Failure::Transient(format!("HTTP {code}: {}", message.trim())),
                _ => self.protocol(format!("HTTP {code}: {}", message.trim())),
            },
            OciDistributionError::UnauthorizedError { .. } => {
                self.unauthorized("HTTP 401 Unauthorized".into())
            }
            OciDistributionError::AuthenticationFailure(reason) => {
                self.unauthorized(format!("the token server refused: {}", reason.trim()))
            }
            OciDistributionError::ImageManifestNotFoundError(_) => self.not_found(what),
            OciDistributionError::RegistryError { ref envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    self.not_found(what)
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    self.unauthorized(envelope.to_string())
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Toomanyrequests))
                {
                    Failure::Transient(envelope.to_string())
                } else {
                    self.protocol(envelope.to_string())
                }
            }
            OciDistributionError::DigestError(d) => Failure::Fatal(Error::DigestMismatch {
                reference: self.original.clone(),
                what,
                expected: String::new(),
                actual: d.to_string(),
            }),
            other => self.protocol(chain(&other)),
        }
    }
}
