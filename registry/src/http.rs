//! Plain HTTP(S) downloads, for `ADD <url>`: one GET, the body streamed
//! to the caller's writer, with what the response says about the file.

use std::io::Write;
use std::time::Duration;

use crate::error::{Error, Result};
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
    /// other than 2xx is an error naming it.
    pub fn download(&self, url: &str, out: &mut dyn Write) -> Result<Download> {
        let failed = |detail: String| Error::Protocol {
            registry: url.to_string(),
            message: detail,
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| failed(format!("setting up the HTTP client: {e}")))?;
        self.runtime()?.block_on(async {
            let mut res = client
                .get(url)
                .send()
                .await
                .map_err(|e| Error::Unreachable {
                    registry: url.to_string(),
                    attempts: 1,
                    detail: crate::transport::chain(&e),
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
            while let Some(chunk) = res
                .chunk()
                .await
                .map_err(|e| failed(format!("reading the body: {}", crate::transport::chain(&e))))?
            {
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
