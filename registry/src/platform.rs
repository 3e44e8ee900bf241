//! Platforms (`os/arch[/variant]`) and choosing one image from an OCI
//! index or a Docker manifest list.

use crate::error::{Error, Result};
use crate::manifest::IndexEntry;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The machine kiln runs on, as images name it.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(String::from),
        }
    }

    /// `linux/arm64`, `linux/arm/v7`, or just `arm64` (os linux).
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || Error::InvalidReference {
            reference: s.to_string(),
            reason: "a platform is OS/ARCH[/VARIANT], e.g. linux/amd64".into(),
        };
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(*v)),
            _ => return Err(bad()),
        };
        if os.is_empty() || arch.is_empty() || variant.is_some_and(str::is_empty) {
            return Err(bad());
        }
        let architecture = match arch {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        Ok(Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(String::from),
        })
    }

    /// The variant an image without one means (arm64 is v8).
    fn effective_variant<'a>(arch: &str, v: Option<&'a str>) -> Option<&'a str> {
        match (arch, v) {
            ("arm64", None) => Some("v8"),
            (_, v) => v,
        }
    }

    fn matches(&self, e: &IndexEntry) -> bool {
        let Some(p) = &e.platform else { return false };
        if p.os != self.os || p.architecture != self.architecture {
            return false;
        }
        match &self.variant {
            None => true,
            Some(want) => {
                Self::effective_variant(&p.architecture, p.variant.as_deref())
                    == Some(want.as_str())
            }
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The index entry for `want`: an exact variant match first, then any
/// entry of that os/arch (an image without a variant runs on any).
pub fn select<'a>(
    reference: &str,
    entries: &'a [IndexEntry],
    want: &Platform,
) -> Result<&'a IndexEntry> {
    if let Some(e) = entries.iter().find(|e| want.matches(e)) {
        return Ok(e);
    }
    let loose = Platform {
        variant: None,
        ..want.clone()
    };
    if let Some(e) = entries
        .iter()
        .find(|e| loose.matches(e) && e.platform.as_ref().is_some_and(|p| p.variant.is_none()))
    {
        return Ok(e);
    }
    let available: Vec<String> = entries
        .iter()
        .filter_map(|e| e.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    Err(Error::NoPlatform {
        reference: reference.to_string(),
        wanted: want.to_string(),
        available: if available.is_empty() {
            "none (the index names no platforms)".into()
        } else {
            available.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{EntryPlatform, IndexEntry};

    fn entry(os: &str, arch: &str, variant: Option<&str>, d: &str) -> IndexEntry {
        IndexEntry {
            digest: d.into(),
            platform: Some(EntryPlatform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(String::from),
            }),
        }
    }

    #[test]
    fn chooses_os_arch_variant() {
        let entries = vec![
            entry("linux", "arm", Some("v6"), "a"),
            entry("linux", "arm", Some("v7"), "b"),
            entry("linux", "amd64", None, "c"),
            entry("linux", "arm64", None, "d"),
        ];
        let pick =
            |p: &str| select("x", &entries, &Platform::parse(p).unwrap()).map(|e| e.digest.clone());
        assert_eq!(pick("linux/amd64").unwrap(), "c");
        assert_eq!(pick("linux/arm/v7").unwrap(), "b");
        assert_eq!(pick("linux/arm64/v8").unwrap(), "d");
        assert_eq!(pick("arm64").unwrap(), "d");
        let err = pick("linux/s390x").unwrap_err().to_string();
        assert!(err.contains("linux/s390x"), "{err}");
        assert!(
            err.contains("linux/arm/v7, linux/amd64, linux/arm64"),
            "{err}"
        );
        assert!(Platform::parse("a/b/c/d").is_err());
        assert!(Platform::parse("linux/").is_err());
    }
}
