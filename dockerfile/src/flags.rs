//! Instruction flags (`--name=value`), parsed like BuildKit's `BFlags`: each
//! instruction declares the flags it knows and their kind; anything else is
//! an error that names the flag and, where one is close, suggests another.

use crate::suggest::closest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    String,
    /// May be repeated; every value is kept in order.
    Strings,
}

/// The flags an instruction accepts and the values found.
#[derive(Debug, Default)]
pub struct Flags {
    known: Vec<(&'static str, Kind)>,
    values: Vec<(&'static str, String)>,
}

impl Flags {
    pub fn new(known: &[(&'static str, Kind)]) -> Self {
        Flags {
            known: known.to_vec(),
            values: Vec::new(),
        }
    }

    /// Reads the raw `--name[=value]` words of one instruction.
    pub fn parse(&mut self, words: &[String], keyword: &str) -> Result<(), String> {
        for word in words {
            let Some(arg) = word.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {word}"));
            };
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let Some(&(known_name, kind)) = self.known.iter().find(|(n, _)| *n == name) else {
                return Err(self.unknown(name, keyword));
            };
            if kind != Kind::Strings && self.values.iter().any(|(n, _)| *n == known_name) {
                return Err(format!("duplicate flag specified: {name}"));
            }
            let value = match (kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".into(),
                    "false" => "false".into(),
                    "" => return Err(format!("missing a value on flag: {name}")),
                    _ => return Err(format!("expecting boolean value for flag {name}, not: {v}")),
                },
                (_, None) => return Err(format!("missing a value on flag: {name}")),
                (_, Some(v)) => v.to_string(),
            };
            self.values.push((known_name, value));
        }
        Ok(())
    }

    fn unknown(&self, name: &str, keyword: &str) -> String {
        let mut msg = format!("unknown flag: --{name} (not valid on {keyword})");
        if let Some(best) = closest(name, self.known.iter().map(|(n, _)| *n)) {
            msg.push_str(&format!("; did you mean --{best}?"));
        }
        msg
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    pub fn strings(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn bool(&self, name: &str) -> bool {
        self.string(name).is_some_and(|v| v == "true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kinds_and_errors() {
        let known = [
            ("link", Kind::Bool),
            ("from", Kind::String),
            ("exclude", Kind::Strings),
        ];
        let mut f = Flags::new(&known);
        f.parse(
            &words(&["--link", "--from=a", "--exclude=x", "--exclude=y"]),
            "COPY",
        )
        .unwrap();
        assert!(f.bool("link"));
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert_eq!(f.strings("exclude"), ["x", "y"]);

        let err = Flags::new(&known)
            .parse(&words(&["--form=a"]), "COPY")
            .unwrap_err();
        assert!(
            err.contains("unknown flag: --form") && err.contains("did you mean --from"),
            "{err}"
        );
        let err = Flags::new(&known)
            .parse(&words(&["--from"]), "COPY")
            .unwrap_err();
        assert_eq!(err, "missing a value on flag: from");
        let err = Flags::new(&known)
            .parse(&words(&["--from=a", "--from=b"]), "COPY")
            .unwrap_err();
        assert_eq!(err, "duplicate flag specified: from");
        let err = Flags::new(&known)
            .parse(&words(&["--link=maybe"]), "COPY")
            .unwrap_err();
        assert!(err.contains("expecting boolean value"));
        let mut f = Flags::new(&known);
        f.parse(&words(&["--link=FALSE"]), "COPY").unwrap();
        assert!(!f.bool("link"));
    }
}
