//! Golden keys: a fixed Dockerfile gives fixed keys. A failure here means
//! the encoding changed: if on purpose, bump `SCHEME` and update the hex.

use super::*;
use kiln_dockerfile::instructions::parse_dockerfile;

const DOCKERFILE: &str = "FROM scratch
ENV A=1 B=\"two words\"
LABEL org.example=x
RUN --mount=type=cache,target=/c,id=c1 --network=none echo hi
COPY --chown=1:2 --chmod=644 --exclude=*.md a.txt b/ /dst/
ADD --link https://example.com/f.tar.gz /f
COPY <<EOF /inline
text
EOF
WORKDIR /w
USER 1000
CMD [\"sh\", \"-c\", \"true\"]
ENTRYPOINT run me
HEALTHCHECK --interval=5s --retries=3 CMD true
EXPOSE 80/tcp
VOLUME /v
STOPSIGNAL SIGTERM
SHELL [\"/bin/sh\", \"-c\"]
ONBUILD RUN x
";

/// The key chain of DOCKERFILE's instructions from the scratch root.
fn chain() -> Vec<String> {
    let file = parse_dockerfile(DOCKERFILE).expect("the golden Dockerfile parses");
    let mut key = root_key("linux/amd64", "scratch", "");
    let mut keys = vec![key.clone()];
    for cmd in &file.stages[0].commands {
        let mut parts = Parts::default();
        instruction_parts(&cmd.instruction, &mut parts);
        key = parts.key(&key);
        keys.push(key.clone());
    }
    keys
}

#[test]
fn golden_keys_of_a_fixed_dockerfile() {
    let keys = chain();
    assert_eq!(keys.len(), 17, "{keys:?}");
    assert_eq!(
        keys[0],
        "5ce8d202eea7724fde73a1297d35bca2186a61683d6311135ea4323b5f99e6e0"
    );
    assert_eq!(
        keys[16],
        "c7f7c909f5be126f53a76bf56d982aefd9685069ced775da9b7e081cf8c06c70"
    );
}

#[test]
fn every_field_reaches_the_key_and_no_two_steps_encode_alike() {
    let file = parse_dockerfile(DOCKERFILE).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for cmd in &file.stages[0].commands {
        assert!(
            seen.insert(instruction(&cmd.instruction)),
            "{}",
            cmd.original
        );
    }
    // Adjacent fields cannot trade bytes: lengths delimit them.
    let a = Enc::new("x").str("ab").str("c").bytes();
    let b = Enc::new("x").str("a").str("bc").bytes();
    assert_ne!(a, b);
    let none = Enc::new("x").opt(None).bytes();
    let empty = Enc::new("x").opt(Some("")).bytes();
    assert_ne!(none, empty);
    // Another platform, another root.
    assert_ne!(
        root_key("linux/amd64", "scratch", ""),
        root_key("linux/arm64", "scratch", "")
    );
}
