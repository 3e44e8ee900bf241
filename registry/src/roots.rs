//! The system's TLS root certificates, read once per process.
//!
//! reqwest's default verifier reads and parses every file under
//! /etc/ssl/certs each time a client is built, and kiln builds two clients
//! per registry session (oci-client's and its own): a `--cache-from` build
//! read the directory 24 times, most of its 0.2 s. Handing every client
//! the same list, read here once (`SSL_CERT_FILE` / `SSL_CERT_DIR` still
//! apply), verifies against the same roots.

use std::sync::OnceLock;

/// The roots as DER, or an empty list when the system has none (then every
/// TLS connection fails to verify, as it would with the default verifier).
fn der() -> &'static [Vec<u8>] {
    static ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        rustls_native_certs::load_native_certs()
            .certs
            .into_iter()
            .map(|c| c.as_ref().to_vec())
            .collect()
    })
}

/// The roots for oci-client's `ClientConfig::tls_certs_only`.
pub(crate) fn for_oci_client() -> Vec<oci_client::client::Certificate> {
    der()
        .iter()
        .map(|d| oci_client::client::Certificate {
            encoding: oci_client::client::CertificateEncoding::Der,
            data: d.clone(),
        })
        .collect()
}

/// The roots for a reqwest `ClientBuilder::tls_certs_only`.
pub(crate) fn for_reqwest() -> Vec<reqwest::Certificate> {
    der()
        .iter()
        .filter_map(|d| reqwest::Certificate::from_der(d).ok())
        .collect()
}
