//! Argument shapes shared by several instructions: JSON arrays (exec form),
//! whitespace-separated words, and `KEY=VALUE` pairs. These mirror the
//! per-keyword argument parsers of BuildKit's `parser` package; quotes and
//! escapes stay in the words, because word expansion removes them later.

/// How the arguments of RUN, CMD, ENTRYPOINT, SHELL were written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandLine {
    /// `["prog", "arg"]`: run directly.
    Exec(Vec<String>),
    /// Anything else: run through the SHELL.
    Shell(String),
}

/// Result of trying to read a JSON array of strings.
pub enum Json {
    Array(Vec<String>),
    /// Not JSON at all: BuildKit falls back to the shell/words form.
    Other,
    /// Valid JSON array, but with non-strings in it: an error.
    NotStrings,
}

pub fn json_array(rest: &str) -> Json {
    if !rest.starts_with('[') {
        return Json::Other;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(rest) {
        Err(_) => Json::Other,
        Ok(values) => values
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map_or(Json::NotStrings, Json::Array),
    }
}

pub const NOT_STRINGS: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// RUN/CMD/ENTRYPOINT/SHELL: a valid JSON array is the exec form, anything
/// else the shell form.
pub fn maybe_json(rest: &str) -> Result<CommandLine, String> {
    match json_array(rest) {
        Json::Array(v) => Ok(CommandLine::Exec(v)),
        Json::NotStrings => Err(NOT_STRINGS.into()),
        Json::Other => Ok(CommandLine::Shell(rest.to_string())),
    }
}

/// ADD/COPY/VOLUME: a JSON array, or whitespace-separated words. The bool
/// tells whether the JSON form was used.
pub fn maybe_json_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    match json_array(rest) {
        Json::Array(v) => Ok((v, true)),
        Json::NotStrings => Err(NOT_STRINGS.into()),
        Json::Other => Ok((whitespace_words(rest), false)),
    }
}

/// Splits on runs of blanks, with no regard for quotes (BuildKit's
/// `parseStringsWhitespaceDelimited`).
pub fn whitespace_words(rest: &str) -> Vec<String> {
    rest.split([' ', '\t', '\r', '\u{b}', '\u{c}'])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits into words where quotes group and the escape token escapes; the
/// quote and escape characters themselves are kept for later expansion.
pub fn quoted_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if in_word && (blank_ok || !word.is_empty()) {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                in_word = false;
                blank_ok = false;
            }
            None => {
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    match chars.next() {
                        Some(n) => {
                            word.push(c);
                            word.push(n);
                        }
                        None => break,
                    }
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == escape && q != '\'' {
                    match chars.next() {
                        Some(n) => {
                            word.push(c);
                            word.push(n);
                        }
                        None => break,
                    }
                    continue;
                }
                word.push(c);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// One `KEY=VALUE` (or legacy `KEY VALUE`) pair, both still unexpanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// ENV and LABEL arguments. Returns the pairs and whether the legacy
/// `KEY value with spaces` form was used.
pub fn name_values(
    rest: &str,
    keyword: &str,
    escape: char,
) -> Result<(Vec<KeyValue>, bool), String> {
    let words = quoted_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(format!("{keyword} requires at least one argument"));
    };
    if !first.contains('=') {
        let mut parts = rest.splitn(2, [' ', '\t']);
        let key = parts.next().unwrap_or_default();
        let value = parts.next().map(str::trim_start).unwrap_or_default();
        if value.is_empty() {
            return Err(format!("{keyword} must have two arguments"));
        }
        return Ok((
            vec![KeyValue {
                key: key.to_string(),
                value: value.to_string(),
            }],
            true,
        ));
    }
    let mut pairs = Vec::with_capacity(words.len());
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ));
        };
        if key.is_empty() {
            return Err(format!("{keyword} names can not be blank"));
        }
        pairs.push(KeyValue {
            key: key.to_string(),
            value: value.to_string(),
        });
    }
    Ok((pairs, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_form_only_for_valid_json_string_arrays() {
        assert_eq!(
            maybe_json(r#"["a", "b c"]"#),
            Ok(CommandLine::Exec(vec!["a".into(), "b c".into()]))
        );
        assert_eq!(
            maybe_json("[a, b]"),
            Ok(CommandLine::Shell("[a, b]".into()))
        );
        assert_eq!(
            maybe_json(r#"["a" "b"]"#),
            Ok(CommandLine::Shell(r#"["a" "b"]"#.into()))
        );
        assert_eq!(
            maybe_json("echo hi"),
            Ok(CommandLine::Shell("echo hi".into()))
        );
        assert_eq!(maybe_json(r#"["a", 1]"#), Err(NOT_STRINGS.into()));
        assert_eq!(maybe_json("[]"), Ok(CommandLine::Exec(vec![])));
    }

    #[test]
    fn quoted_words_keep_quotes_for_expansion() {
        assert_eq!(
            quoted_words(r#"a="b c" d='e f' g\ h"#, '\\'),
            [r#"a="b c""#, "d='e f'", r"g\ h"]
        );
        assert_eq!(quoted_words("  x\t y  ", '\\'), ["x", "y"]);
        assert_eq!(quoted_words(r#"k="""#, '\\'), [r#"k="""#]);
        assert_eq!(quoted_words("a`  b", '`'), ["a` ", "b"]);
    }

    #[test]
    fn env_forms() {
        let (kv, legacy) = name_values("FOO bar baz", "ENV", '\\').unwrap();
        assert!(legacy);
        assert_eq!(
            kv,
            [KeyValue {
                key: "FOO".into(),
                value: "bar baz".into()
            }]
        );
        let (kv, legacy) = name_values(r#"A=1 B="two words" C=$A"#, "ENV", '\\').unwrap();
        assert!(!legacy);
        assert_eq!(kv.len(), 3);
        assert_eq!(kv[1].value, r#""two words""#);
        assert_eq!(
            name_values("FOO", "ENV", '\\').unwrap_err(),
            "ENV must have two arguments"
        );
        assert!(name_values("A=1 B", "ENV", '\\')
            .unwrap_err()
            .contains("can't find ="));
        assert!(name_values("=x", "LABEL", '\\')
            .unwrap_err()
            .contains("names can not be blank"));
        assert!(name_values("", "LABEL", '\\').is_err());
    }
}
