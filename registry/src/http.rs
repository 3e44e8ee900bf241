//! Plain HTTP(S) downloads, for `ADD <url>`: one GET, the body streamed
//! to the caller's writer, with what the response says about the file.

use std::io::Write;

use crate::error::{Error, Result};
use crate::limits::{self, URL_MAX_VAR};
use crate::Registry;

/// What a download's response said about the file.
#[derive(Clone, Debug, Default)]
pub struct Download {
    /// Bytes written.
    pub size: u64,
    /// The `Last-Modified` header, as sent.
    pub last_modified: Option<String>,
    /// The `filename` of a `Content-Disposition` header, as sent.
    pub disposition_name: Option<String>,
}

impl Registry {
    /// GETs `url` (http or https, redirects followed) into `out`; a status
    /// other than 2xx is an error naming it. A server that goes quiet for
    /// the idle timeout, or a body past [`URL_MAX_VAR`]'s size, fails it.
    pub fn download(&self, url: &str, out: &mut dyn Write) -> Result<Download> {
        let failed = |detail: String| Error::Protocol {
            registry: url.to_string(),
            message: detail,
        };
        let timeout_hint = |e: &reqwest::Error| self.limits.timeout_hint(e);
        let max = self.limits.url_max;
        let too_large = |size: Option<u64>| {
            let size = size.map_or("larger than".into(), |n| format!("{n} bytes, more than"));
            failed(format!(
                "the file is {size} the {max} bytes an ADD download may be (set {URL_MAX_VAR} to allow more)"
            ))
        };
        let client = limits::http_client(&self.limits)
            .map_err(|e| failed(format!("setting up the HTTP client: {e}")))?;
        self.runtime()?.block_on(async {
            let mut res = client
                .get(url)
                .send()
                .await
                .map_err(|e| Error::Unreachable {
                    registry: url.to_string(),
                    attempts: 1,
                    detail: format!("{}{}", crate::transport::chain(&e), timeout_hint(&e)),
                })?;
            if !res.status().is_success() {
                return Err(failed(format!("the server answered {}", res.status())));
            }
            let header = |name: reqwest::header::HeaderName| {
                res.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let mut download = Download {
                size: 0,
                last_modified: header(reqwest::header::LAST_MODIFIED),
                disposition_name: header(reqwest::header::CONTENT_DISPOSITION)
                    .as_deref()
                    .and_then(disposition_name),
            };
            if let Some(n) = res.content_length().filter(|n| *n > max) {
                return Err(too_large(Some(n)));
            }
            while let Some(chunk) = res.chunk().await.map_err(|e| {
                failed(format!(
                    "reading the body: {}{}",
                    crate::transport::chain(&e),
                    timeout_hint(&e)
                ))
            })? {
                if download.size + chunk.len() as u64 > max {
                    return Err(too_large(None));
                }
                out.write_all(&chunk)
                    .map_err(|e| Error::io(format!("writing {url}"), e))?;
                download.size += chunk.len() as u64;
            }
            Ok(download)
        })
    }
}

/// The `filename` parameter of a Content-Disposition value, quoted or not.
fn disposition_name(value: &str) -> Option<String> {
    value.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("filename")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::disposition_name;

    #[test]
    fn content_disposition_filename() {
        assert_eq!(
            disposition_name(r#"attachment; filename="app.tar.gz""#).as_deref(),
            Some("app.tar.gz")
        );
        assert_eq!(
            disposition_name("attachment; FILENAME=x").as_deref(),
            Some("x")
        );
        assert_eq!(disposition_name("inline"), None);
    }
}
