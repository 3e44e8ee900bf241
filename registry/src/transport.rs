//! One conversation with one registry: the oci-client for it (plain HTTP
//! only where allowed), its credentials, retries with backoff for what a
//! retry can fix, and oci-client's errors turned into kiln's.

use std::collections::HashMap;
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
use crate::limits::{self, Limits};

/// Attempts for an operation that fails for a reason a retry may fix (the
/// registry down, a dropped connection, 5xx, 429).
const ATTEMPTS: u32 = 4;
const FIRST_DELAY: Duration = Duration::from_millis(250);
const USER_AGENT: &str = concat!("kiln/", env!("CARGO_PKG_VERSION"));

pub(crate) struct Session {
    pub client: Client,
    /// For the requests kiln makes itself (manifests, read bounded), with
    /// the same timeouts as `client`.
    pub http: reqwest::Client,
    /// `http` or `https` for this endpoint.
    pub scheme: &'static str,
    /// The bearer token the auth challenge gave, for `http`'s requests.
    pub token: std::sync::Mutex<Option<String>>,
    pub limits: Limits,
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

/// The HTTP clients of one [`crate::Registry`] (so of one tokio runtime,
/// which their pooled connections belong to), one pair per scheme, host
/// and credentials. Every session with a registry then shares its
/// connections and oci-client's tokens, and TLS setup is paid once: a
/// `--cache-from` build opened 8 sessions, and each client build read
/// every root certificate file again (oci-client also builds a default
/// reqwest client beside each of its own).
#[derive(Default)]
pub(crate) struct Clients(std::sync::Mutex<HashMap<ClientKey, (Client, reqwest::Client)>>);

#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    insecure: bool,
    host: String,
    creds: Option<(String, String)>,
}

impl Clients {
    /// The clients for `key`, made by `make` the first time.
    fn get(
        &self,
        key: ClientKey,
        make: impl FnOnce() -> Result<(Client, reqwest::Client)>,
    ) -> Result<(Client, reqwest::Client)> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pair) = map.get(&key) {
            return Ok(pair.clone());
        }
        let pair = make()?;
        map.insert(key, pair.clone());
        Ok(pair)
    }
}

impl Session {
    pub fn new(
        endpoint: &Endpoint,
        original: &str,
        auth_file: Option<&Path>,
        limits: &Limits,
        clients: &Clients,
    ) -> Result<Session> {
        let r = &endpoint.reference;
        let host = r.resolve_registry().to_string();
        let creds = auth::lookup(auth_file, r.registry(), r.repository())?;
        let key = ClientKey {
            insecure: endpoint.insecure,
            host: host.clone(),
            creds: creds
                .as_ref()
                .map(|c| (c.username.clone(), c.password.clone())),
        };
        let (client, http) = clients.get(key, || {
            let setup = |e: &dyn std::error::Error| Error::Protocol {
                registry: r.registry().to_string(),
                message: format!("setting up the HTTP client: {}", chain(e)),
            };
            let config = ClientConfig {
                protocol: if endpoint.insecure {
                    ClientProtocol::HttpsExcept(vec![host.clone()])
                } else {
                    ClientProtocol::Https
                },
                platform_resolver: None,
                // reqwest's read timeout: from the request to its headers,
                // then between body reads, so a stalled registry fails.
                connect_timeout: Some(limits.connect),
                read_timeout: Some(limits.idle),
                user_agent: USER_AGENT,
                tls_certs_only: crate::roots::for_oci_client(),
                ..ClientConfig::default()
            };
            let client = Client::try_from(config).map_err(|e| setup(&e))?;
            let http = limits::http_client(limits).map_err(|e| setup(&e))?;
            Ok((client, http))
        })?;
        let auth = match &creds {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        Ok(Session {
            client,
            http,
            scheme: if endpoint.insecure { "http" } else { "https" },
            token: std::sync::Mutex::new(None),
            limits: limits.clone(),
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
        self.retry(|| self.refresh_token(op)).await
    }

    /// Asks for a token (kept for kiln's own requests; oci-client keeps
    /// its own).
    pub async fn refresh_token(&self, op: RegistryOperation) -> Result<(), Failure> {
        let token = self
            .client
            .auth(&self.reference, &self.auth, op)
            .await
            .map_err(|e| self.failure(e, "registry"))?;
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = token;
        Ok(())
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

    pub fn unauthorized(&self, status: String) -> Failure {
        Failure::Fatal(Error::Unauthorized {
            registry: self.registry().to_string(),
            reference: self.original.clone(),
            status,
            tried: self.tried(),
        })
    }

    pub fn not_found(&self, what: &'static str) -> Failure {
        Failure::Fatal(Error::NotFound {
            reference: self.original.clone(),
            registry: self.registry().to_string(),
            what,
        })
    }

    pub fn protocol(&self, message: String) -> Failure {
        Failure::Fatal(Error::Protocol {
            registry: self.registry().to_string(),
            message,
        })
    }

    /// A failure worth retrying; a timeout says what kiln waited.
    pub fn transient(&self, e: &(dyn std::error::Error + 'static)) -> Failure {
        Failure::Transient(self.describe(e))
    }

    /// `e` with its causes, and for a timeout what kiln waited.
    pub fn describe(&self, e: &(dyn std::error::Error + 'static)) -> String {
        format!("{}{}", chain(e), self.limits.timeout_hint(e))
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
                // The reqwest error itself: oci-client's wrapper is
                // transparent, so its source() skips it.
                _ => self.transient(r),
            },
            OciDistributionError::IoError(ref io) => self.transient(io),
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
