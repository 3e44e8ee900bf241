//! Hostile servers (tests/support/hostile.rs): registries and ADD URLs
//! that stall, send too much, or hand out digests that are paths. kiln
//! must fail within its timeouts (shortened here through
//! KILN_HTTP_TIMEOUT), in little memory, with an error naming the host,
//! and never send a request outside the repository. Run as an
//! unprivileged user by scripts/test-build.sh.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::hostile::{Hostile, Reply, Request};
use support::registry::base64;
use support::{fails, host_arch, kiln_bin, text, Case};

const TIMEOUT_VAR: &str = "KILN_HTTP_TIMEOUT";
/// Four attempts of half a second and the backoff between them fit well
/// inside this; the 30 s default (or a hang) does not.
const QUICK: Duration = Duration::from_secs(12);

/// Runs `kiln --root STORE args…` (under `/usr/bin/time` if `measure`),
/// killing it after `deadline`; its output and how long it took.
fn run(case: &Case, args: &[&str], env: &[(&str, &str)], measure: bool) -> (Output, Duration) {
    let mut cmd = if measure {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "maxrss-kb=%M"]).arg(kiln_bin());
        c
    } else {
        Command::new(kiln_bin())
    };
    cmd.arg("--root")
        .arg(case.store())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("kiln runs");
    let deadline = Duration::from_secs(40);
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "kiln {args:?} still running after {deadline:?}:\n{}",
                text(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    (child.wait_with_output().unwrap(), took)
}

fn json(body: &str) -> Reply {
    Reply::Body {
        status: "200 OK",
        headers: vec!["Content-Type: application/json".into()],
        body: body.as_bytes().to_vec(),
    }
}

fn not_found() -> Reply {
    Reply::Body {
        status: "404 Not Found",
        headers: vec![],
        body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#.to_vec(),
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_registry_that_stalls_fails_within_the_timeout_naming_it() {
    let case = Case::new("stall");
    let env = [(TIMEOUT_VAR, "0.5")];
    // Accepts the connection and never answers.
    let silent = Hostile::start(|_| Reply::Stall);
    let (out, took) = run(
        &case,
        &["pull", &format!("{}/x:1", silent.host())],
        &env,
        false,
    );
    let err = fails(&out);
    assert!(took < QUICK, "took {took:?}:\n{err}");
    assert!(
        err.contains(&silent.host()) && err.contains("timed out") && err.contains(TIMEOUT_VAR),
        "{err}"
    );

    // Answers, then stalls inside the manifest's body.
    let midway = Hostile::start(|r: &Request| match r.path.as_str() {
        "/v2/" => json("{}"),
        _ => Reply::StallBody {
            declared: 1000,
            sent: b"{\"schemaVersion\":".to_vec(),
        },
    });
    let (out, took) = run(
        &case,
        &["pull", &format!("{}/x:1", midway.host())],
        &env,
        false,
    );
    let err = fails(&out);
    assert!(took < QUICK, "took {took:?}:\n{err}");
    assert!(
        err.contains(&midway.host()) && err.contains("timed out"),
        "{err}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn an_index_entry_digest_that_is_a_path_is_never_requested() {
    let case = Case::new("canary");
    let hostile = "sha256:../../../../../../home/kilntest/CANARY";
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
        {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{hostile}","size":2,
        "platform":{{"os":"linux","architecture":"{}"}}}}]}}"#,
        host_arch()
    );
    // Basic auth, so a request that escaped would carry the password.
    let server = Hostile::start(move |r: &Request| match r.path.as_str() {
        "/v2/" if r.authorization.is_none() => Reply::Body {
            status: "401 Unauthorized",
            headers: vec![r#"WWW-Authenticate: Basic realm="kiln-test""#.into()],
            body: b"{}".to_vec(),
        },
        "/v2/" => json("{}"),
        "/v2/evil/app/manifests/1" => Reply::Body {
            status: "200 OK",
            headers: vec!["Content-Type: application/vnd.oci.image.index.v1+json".into()],
            body: index.as_bytes().to_vec(),
        },
        _ => not_found(),
    });
    let auth = case.path("auth.json");
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            server.host(),
            base64(b"alice:s3cret")
        ),
    )
    .unwrap();
    let env = [("REGISTRY_AUTH_FILE", auth.to_str().unwrap())];
    let (out, _) = run(
        &case,
        &["pull", &format!("{}/evil/app:1", server.host())],
        &env,
        false,
    );
    let paths = server.paths();
    assert!(
        paths.iter().any(|p| p == "/v2/evil/app/manifests/1"),
        "{paths:?}"
    );
    for r in server.requests.lock().unwrap().iter() {
        let p = &r.path;
        assert!(
            (p == "/v2/" || p.starts_with("/v2/evil/app/manifests/")) && !p.contains("CANARY"),
            "a request left the repository: {} {p} with Authorization {:?} (all: {paths:?})",
            r.method,
            r.authorization
        );
    }
    let err = fails(&out);
    assert!(
        err.contains("not a digest") && err.contains(hostile),
        "{err}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_huge_manifest_is_refused_in_little_memory() {
    let case = Case::new("huge-manifest");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":2}},
        "layers":[]}}"#,
        "a".repeat(64)
    );
    // 64 MiB of valid JSON: with its Content-Length, and without one.
    let server = Hostile::start(move |r: &Request| {
        let declared = match r.path.as_str() {
            "/v2/" => return json("{}"),
            "/v2/big/manifests/declared" => true,
            "/v2/big/manifests/streamed" => false,
            _ => return not_found(),
        };
        Reply::Padded {
            headers: vec!["Content-Type: application/vnd.oci.image.manifest.v1+json".into()],
            head: manifest.as_bytes().to_vec(),
            spaces: 64 << 20,
            declared,
        }
    });
    for tag in ["declared", "streamed"] {
        let (out, _) = run(
            &case,
            &["pull", &format!("{}/big:{tag}", server.host())],
            &[],
            true,
        );
        let err = fails(&out);
        assert!(
            err.contains(&format!("manifest big:{tag} sent by {}", server.host()))
                && err.contains("the 4 MiB kiln accepts"),
            "{tag}: {err}"
        );
        let rss_kb: u64 = err
            .lines()
            .find_map(|l| l.strip_prefix("maxrss-kb="))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no maxrss in:\n{err}"));
        assert!(rss_kb < 48 * 1024, "{tag}: {rss_kb} KiB resident:\n{err}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn an_add_url_whose_body_stalls_fails_within_the_timeout() {
    let case = Case::new("url-stall");
    let server = Hostile::start(|_| Reply::StallBody {
        declared: 1 << 20,
        sent: vec![b'x'; 1000],
    });
    let url = format!("http://{}/file", server.host());
    case.dockerfile(&format!("FROM scratch\nADD {url} /file\n"));
    let ctx = case.ctx();
    let (out, took) = run(
        &case,
        &["build", ctx.to_str().unwrap()],
        &[(TIMEOUT_VAR, "0.5")],
        false,
    );
    let err = fails(&out);
    assert!(took < QUICK, "took {took:?}:\n{err}");
    assert!(
        err.contains(&url) && err.contains("timed out") && err.contains(TIMEOUT_VAR),
        "{err}"
    );
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn an_add_url_body_past_the_cap_is_refused() {
    let case = Case::new("url-endless");
    // 16 MiB, with a Content-Length or ended only by closing (as an
    // endless body would be, were it not cut).
    let server = Hostile::start(|r: &Request| Reply::Padded {
        headers: vec![],
        head: vec![],
        spaces: 16 << 20,
        declared: r.path == "/declared",
    });
    for path in ["declared", "streamed"] {
        let url = format!("http://{}/{path}", server.host());
        case.dockerfile(&format!("FROM scratch\nADD {url} /file\n"));
        let ctx = case.ctx();
        let (out, _) = run(
            &case,
            &["build", ctx.to_str().unwrap()],
            &[("KILN_ADD_URL_MAX_SIZE", "1M")],
            false,
        );
        let err = fails(&out);
        assert!(
            err.contains(&url) && err.contains("the 1048576 bytes an ADD download may be"),
            "{path}: {err}"
        );
        assert!(err.contains("Dockerfile:2"), "{err}");
    }
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn a_config_over_4_mib_is_refused_unfetched() {
    let case = Case::new("huge-config");
    let config = format!("sha256:{}", "c".repeat(64));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{}}},
        "layers":[]}}"#,
        (4 << 20) + 1
    );
    let server = Hostile::start(move |r: &Request| match r.path.as_str() {
        "/v2/" => json("{}"),
        "/v2/big/manifests/1" => Reply::Body {
            status: "200 OK",
            headers: vec!["Content-Type: application/vnd.oci.image.manifest.v1+json".into()],
            body: manifest.as_bytes().to_vec(),
        },
        // Would be read whole into memory.
        _ => Reply::Padded {
            headers: vec![],
            head: b"{}".to_vec(),
            spaces: 64 << 20,
            declared: true,
        },
    });
    let (out, _) = run(
        &case,
        &["pull", &format!("{}/big:1", server.host())],
        &[],
        false,
    );
    let err = fails(&out);
    assert!(
        err.contains(&format!("image config {config} is 4194305 bytes")) && err.contains("4 MiB"),
        "{err}"
    );
    let paths = server.paths();
    assert!(!paths.iter().any(|p| p.contains("/blobs/")), "{paths:?}");
}
