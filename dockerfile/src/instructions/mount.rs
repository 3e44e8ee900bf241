//! `RUN --mount=…` values, read like BuildKit's `runmount.go`: a CSV list of
//! `key=value` fields. The same parser runs twice: at parse time with the
//! values as written (to report mistakes early, with the line), and in the
//! build engine with each value expanded in the step's environment.

use crate::suggest::closest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    const ALL: [&'static str; 5] = ["bind", "cache", "tmpfs", "secret", "ssh"];

    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "bind" => MountType::Bind,
            "cache" => MountType::Cache,
            "tmpfs" => MountType::Tmpfs,
            "secret" => MountType::Secret,
            "ssh" => MountType::Ssh,
            _ => {
                let mut msg = format!("unsupported mount type {s:?}");
                if let Some(best) = closest(s, Self::ALL) {
                    msg.push_str(&format!("; did you mean {best}?"));
                }
                return Err(msg);
            }
        })
    }

    pub fn name(self) -> &'static str {
        Self::ALL[self as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: bool,
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub required: bool,
    pub env: Option<String>,
}

const KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "required",
    "size",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "env",
];

impl Mount {
    /// BuildKit's parse-time look at a `--mount` value, before anything is
    /// expanded: `from=` may not name a variable (the stage graph must be
    /// known up front). Returns whether some value holds a `$`, so that
    /// the spec can only be parsed once expanded.
    pub fn check_unexpanded(spec: &str) -> Result<bool, String> {
        let mut has_variable = false;
        for field in csv_fields(spec)? {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let dollar = value.find('$');
            if key.eq_ignore_ascii_case("from") && dollar.is_some_and(|i| i + 1 != value.len()) {
                return Err(
                    "'from' doesn't support variable expansion, define alias stage instead".into(),
                );
            }
            has_variable |= dollar.is_some();
        }
        Ok(has_variable)
    }

    /// Parses one `--mount` value; `expand` is applied to every value.
    pub fn parse(
        spec: &str,
        expand: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Mount, String> {
        let mut m = Mount {
            kind: MountType::Bind,
            from: None,
            source: None,
            target: None,
            read_only: false,
            id: None,
            sharing: None,
            mode: None,
            uid: None,
            gid: None,
            size: None,
            required: false,
            env: None,
        };
        let mut ro_given = false;
        for field in csv_fields(spec)? {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
                None => (field.to_ascii_lowercase(), None),
            };
            let Some(raw) = value else {
                m.flag(&key, &field, &mut ro_given)?;
                continue;
            };
            let value = expand(raw)?;
            m.field(&key, &field, value, &mut ro_given)?;
        }
        if !ro_given {
            m.read_only = matches!(m.kind, MountType::Bind | MountType::Secret | MountType::Ssh);
        }
        m.validate()?;
        Ok(m)
    }

    fn flag(&mut self, key: &str, field: &str, ro_given: &mut bool) -> Result<(), String> {
        match key {
            "readonly" | "ro" => self.read_only = true,
            "readwrite" | "rw" => self.read_only = false,
            "required" => return self.set_required(key, "true"),
            _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
        }
        *ro_given = true;
        Ok(())
    }

    fn field(
        &mut self,
        key: &str,
        field: &str,
        value: String,
        ro_given: &mut bool,
    ) -> Result<(), String> {
        let number = |radix: u32| {
            u32::from_str_radix(&value, radix)
                .map_err(|_| format!("invalid value for {key}: {value:?}"))
        };
        match key {
            "type" => self.kind = MountType::parse(&value)?,
            "from" => self.from = Some(value),
            "source" | "src" => self.source = Some(value),
            "target" | "dst" | "destination" => self.target = Some(value),
            "readonly" | "ro" => {
                self.read_only = parse_bool(key, &value)?;
                *ro_given = true;
            }
            "readwrite" | "rw" => {
                self.read_only = !parse_bool(key, &value)?;
                *ro_given = true;
            }
            "required" => self.set_required(key, &value)?,
            "size" => {
                self.only_for(key, &[MountType::Tmpfs])?;
                self.size = Some(parse_size(&value)?);
            }
            "id" => self.id = Some(value),
            "sharing" => {
                self.only_for(key, &[MountType::Cache])?;
                self.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(format!("unsupported sharing value {value:?}")),
                });
            }
            "mode" => self.mode = Some(number(8)?),
            "uid" => self.uid = Some(number(10)?),
            "gid" => self.gid = Some(number(10)?),
            "env" => self.env = Some(value),
            _ => {
                let mut msg = format!("unexpected key '{key}' in '{field}'");
                if let Some(best) = closest(key, KEYS) {
                    msg.push_str(&format!("; did you mean {best}?"));
                }
                return Err(msg);
            }
        }
        Ok(())
    }

    fn set_required(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.only_for(key, &[MountType::Secret, MountType::Ssh])?;
        self.required = parse_bool(key, value)?;
        Ok(())
    }

    fn only_for(&self, key: &str, kinds: &[MountType]) -> Result<(), String> {
        if kinds.contains(&self.kind) {
            Ok(())
        } else {
            Err(format!(
                "unexpected key '{key}' for mount type '{}'",
                self.kind.name()
            ))
        }
    }

    fn validate(&self) -> Result<(), String> {
        let kind = self.kind.name();
        let file_info = matches!(
            self.kind,
            MountType::Secret | MountType::Ssh | MountType::Cache
        );
        for (name, set) in [
            ("mode", self.mode.is_some()),
            ("uid", self.uid.is_some()),
            ("gid", self.gid.is_some()),
        ] {
            if set && !file_info {
                return Err(format!("{name} not allowed for {kind:?} type mounts"));
            }
        }
        match self.kind {
            MountType::Bind | MountType::Cache | MountType::Tmpfs => {
                let target = self.target.as_deref().unwrap_or("");
                if target.trim_matches('/').is_empty() {
                    return Err(format!(
                        "invalid mount target {target:?}: type={kind} needs a target other than /"
                    ));
                }
            }
            MountType::Secret => {
                if self.from.is_some() {
                    return Err("secret mount should not have a from".into());
                }
                if self.source.is_none()
                    && self.target.is_none()
                    && self.id.is_none()
                    && self.env.is_none()
                {
                    return Err(
                        "invalid secret mount: one of id, source, target or env is required".into(),
                    );
                }
                if self.source.is_some() && self.id.is_some() {
                    return Err("invalid secret mount: both source and id can't be set".into());
                }
            }
            MountType::Ssh => {}
        }
        if self.env.is_some() && self.kind != MountType::Secret {
            return Err(format!("unexpected key 'env' for mount type '{kind}'"));
        }
        if self.from.is_some() && self.kind == MountType::Tmpfs {
            return Err("tmpfs mount should not have a from".into());
        }
        Ok(())
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value:?}")),
    }
}

/// Docker's `RAMInBytes`: `64m`, `1.5g`, `512kb`, `100`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let mult: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(format!("invalid size: {s:?}")),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid size: {s:?}"))?;
    Ok((n * mult as f64) as u64)
}

/// Splits a CSV record like Go's encoding/csv: `"` quotes a field, `""`
/// inside quotes is a literal quote.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if field.is_empty() => quoted = true,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(format!("unterminated quote in mount spec {s:?}"));
    }
    fields.push(field);
    Ok(fields.into_iter().filter(|f| !f.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Mount, String> {
        Mount::parse(s, &|v| Ok(v.to_string()))
    }

    #[test]
    fn bind_defaults_read_only_cache_writable() {
        let m = parse("type=bind,from=builder,source=/out,target=/in").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.read_only);
        assert_eq!(m.from.as_deref(), Some("builder"));
        let m = parse("target=/src,rw").unwrap();
        assert!(!m.read_only);
        let m = parse("type=cache,target=/root/.cache,id=go,sharing=locked,mode=0755,uid=1000")
            .unwrap();
        assert!(!m.read_only);
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!(m.mode, Some(0o755));
        assert_eq!(m.uid, Some(1000));
    }

    #[test]
    fn tmpfs_secret_ssh() {
        assert_eq!(
            parse("type=tmpfs,target=/t,size=64m").unwrap().size,
            Some(64 << 20)
        );
        let m = parse("type=secret,id=tok,env=TOKEN,required").unwrap();
        assert!(m.required && m.read_only);
        assert!(parse("type=ssh").is_ok());
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(parse("type=bnd,target=/x")
            .unwrap_err()
            .contains("did you mean bind"));
        assert!(parse("type=bind")
            .unwrap_err()
            .contains("invalid mount target"));
        assert!(parse("target=/x,size=1m")
            .unwrap_err()
            .contains("unexpected key 'size'"));
        assert!(parse("target=/x,trget=/y")
            .unwrap_err()
            .contains("did you mean target"));
        assert!(parse("target=/x,mode=0755")
            .unwrap_err()
            .contains("mode not allowed"));
        assert!(parse("type=cache,target=/x,sharing=both")
            .unwrap_err()
            .contains("sharing"));
        assert!(parse("type=secret")
            .unwrap_err()
            .contains("invalid secret mount"));
        assert!(parse("type=secret,id=a,from=b")
            .unwrap_err()
            .contains("from"));
        assert!(parse("target=/x,foo").unwrap_err().contains("key=value"));
        assert!(parse("\"target=/x").unwrap_err().contains("unterminated"));
        assert!(parse("type=cache,target=/x,uid=-1").is_err());
        assert!(parse("target=/x,env=TOKEN")
            .unwrap_err()
            .contains("unexpected key 'env'"));
        assert!(parse("env=TOKEN,type=secret,id=t").is_ok());
    }

    #[test]
    fn csv_quotes() {
        let m = parse(r#""target=/a,b",type=tmpfs"#).unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
    }
}
