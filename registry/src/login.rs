//! `kiln login`: checks credentials against the registry before they are
//! saved, through whichever challenge its `/v2/` answers with (basic, or
//! a bearer-token realm asked with those credentials).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::reference::is_loopback;
use crate::Registry;

/// `key="value"` parameters of a `WWW-Authenticate: Bearer …` header.
fn challenge_params(header: &str) -> Vec<(String, String)> {
    let rest = header.trim();
    let rest = rest.split_once(' ').map_or("", |(_, params)| params).trim();
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| *c == ',' || c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        out.push((key.trim().to_ascii_lowercase(), value));
    }
    out
}

impl Registry {
    /// Whether `host` takes `username`/`password`; Ok also when the
    /// registry asks for no credentials at all.
    pub fn check_login(&self, host: &str, username: &str, password: &str) -> Result<()> {
        let host = match host
            .trim_start_matches("https://")
            .trim_start_matches("http://")
        {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            h => h.trim_end_matches('/'),
        };
        let insecure = is_loopback(host)
            || self.opts.insecure.iter().any(|h| h == host)
            || self.conf.is_insecure(host);
        let scheme = if insecure { "http" } else { "https" };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .tls_certs_only(crate::roots::for_reqwest())
            .build()
            .map_err(|e| protocol(host, format!("setting up the HTTP client: {e}")))?;
        let rt = self.runtime()?;
        rt.block_on(async {
            let url = format!("{scheme}://{host}/v2/");
            let unreachable = |e: reqwest::Error| Error::Unreachable {
                registry: host.to_string(),
                attempts: 1,
                detail: crate::transport::chain(&e),
            };
            let res = client.get(&url).send().await.map_err(unreachable)?;
            if res.status().is_success() {
                return Ok(());
            }
            let challenge = res
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let checked = if challenge.to_ascii_lowercase().starts_with("bearer") {
                let params = challenge_params(&challenge);
                let get = |k: &str| {
                    params
                        .iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.clone())
                };
                let realm = get("realm").ok_or_else(|| {
                    protocol(
                        host,
                        format!("bearer challenge without a realm: {challenge}"),
                    )
                })?;
                let mut query = vec![("account", username.to_string())];
                if let Some(service) = get("service") {
                    query.push(("service", service));
                }
                client
                    .get(&realm)
                    .query(&query)
                    .basic_auth(username, Some(password))
                    .send()
                    .await
                    .map_err(unreachable)?
            } else {
                client
                    .get(&url)
                    .basic_auth(username, Some(password))
                    .send()
                    .await
                    .map_err(unreachable)?
            };
            match checked.status().as_u16() {
                200..=299 => Ok(()),
                401 | 403 => Err(Error::LoginRefused {
                    registry: host.to_string(),
                    username: username.to_string(),
                    status: checked.status().to_string(),
                }),
                code => Err(protocol(host, format!("login answered HTTP {code}"))),
            }
        })
    }
}

fn protocol(host: &str, message: String) -> Error {
    Error::Protocol {
        registry: host.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::challenge_params;

    #[test]
    fn bearer_challenges() {
        let p = challenge_params(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[1], ("service".into(), "registry.example".into()));
        assert_eq!(p[2].1, "repository:a/b:pull");
        assert!(challenge_params("Bearer").is_empty());
    }
}
