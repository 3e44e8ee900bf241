//! Platforms (`os/arch[/variant]`) as BuildKit normalises them, and the
//! automatic platform ARGs: BUILD* name the machine kiln runs on, TARGET*
//! the platform the build is for.

/// A build or target platform.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the running kernel/binary.
    pub fn host() -> Self {
        Platform {
            os: "linux".into(),
            arch: normal_arch(std::env::consts::ARCH).into(),
            variant: None,
        }
    }

    /// `linux/arm64`, `linux/arm/v7`, or a bare `arm64` (os linux),
    /// normalised as containerd's platforms package does: `x86_64` is
    /// amd64, `aarch64` arm64, and arm64's default variant `v8` is dropped
    /// (so `linux/arm64/v8` and `linux/arm64` are one platform).
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(*v)),
            _ => {
                return Err(format!(
                    "{s:?}: a platform is OS/ARCH[/VARIANT], e.g. linux/arm64"
                ))
            }
        };
        let valid = |c: &str| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
        };
        if !valid(os) || !valid(arch) || variant.is_some_and(|v| !valid(v)) {
            return Err(format!(
                "{s:?}: a platform is OS/ARCH[/VARIANT], e.g. linux/arm64"
            ));
        }
        let arch = normal_arch(&arch.to_ascii_lowercase()).to_string();
        let variant = match (arch.as_str(), variant) {
            ("arm64", Some("v8")) => None,
            ("arm", None) => Some("v7".to_string()),
            (_, v) => v.map(str::to_ascii_lowercase),
        };
        Ok(Platform {
            os: os.to_ascii_lowercase(),
            arch,
            variant,
        })
    }

    pub fn triple(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.arch),
            None => format!("{}/{}", self.os, self.arch),
        }
    }

    /// The automatic ARGs: BUILD* of the host, TARGET* of this platform
    /// (the target).
    pub fn automatic_args(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (prefix, p) in [("BUILD", &Platform::host()), ("TARGET", self)] {
            out.push((format!("{prefix}PLATFORM"), p.triple()));
            out.push((format!("{prefix}OS"), p.os.clone()));
            out.push((format!("{prefix}ARCH"), p.arch.clone()));
            out.push((
                format!("{prefix}VARIANT"),
                p.variant.clone().unwrap_or_default(),
            ));
        }
        out
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.triple())
    }
}

/// An architecture as image configs name it (Go's GOARCH).
fn normal_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "x86" | "i386" | "i686" => "386",
        "powerpc64le" => "ppc64le",
        "armhf" | "armel" => "arm",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.triple(), "linux/arm64");
        assert_eq!(Platform::parse("aarch64").unwrap().triple(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/arm").unwrap().triple(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().triple(),
            "linux/amd64"
        );
        assert!(Platform::parse("linux/").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }

    #[test]
    fn build_args_are_the_hosts_target_args_the_targets() {
        let target = Platform::parse("linux/s390x").unwrap();
        let args: std::collections::BTreeMap<_, _> = target.automatic_args().into_iter().collect();
        assert_eq!(args["TARGETARCH"], "s390x");
        assert_eq!(args["TARGETPLATFORM"], "linux/s390x");
        assert_eq!(args["BUILDPLATFORM"], Platform::host().triple());
    }
}
