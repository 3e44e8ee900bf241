//! The lexer against BuildKit's behaviour.

use super::*;

fn env() -> BTreeMap<String, String> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("E", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn word(w: &str) -> Result<String, ShellError> {
    Lexer::new('\\').process_word(w, &env())
}

#[test]
fn bash_like_quoting() {
    assert_eq!(word("hello").unwrap(), "hello");
    assert_eq!(word("he'll'o").unwrap(), "hello");
    assert_eq!(word("he\"ll\"o").unwrap(), "hello");
    assert_eq!(word("'$PWD'").unwrap(), "$PWD");
    assert_eq!(word("\"$PWD\"").unwrap(), "/home");
    assert_eq!(word("he\\'llo").unwrap(), "he'llo");
    assert_eq!(word("\"a\\b\\\"c\"").unwrap(), "a\\b\"c");
    assert_eq!(word("abc\\").unwrap(), "abc");
    assert_eq!(word("$").unwrap(), "$");
    assert_eq!(word("$KOREAN").unwrap(), "한국어");
}

#[test]
fn unterminated_quotes_and_braces() {
    assert!(word("'abc").is_err());
    assert!(word("\"abc").is_err());
    assert_eq!(word("${PWD").unwrap_err(), ShellError::MissingBrace);
    assert_eq!(word("${}").unwrap_err(), ShellError::BadSubstitution);
    assert_eq!(word("${:x}").unwrap_err(), ShellError::BadSubstitution);
    assert!(matches!(
        word("${PWD:#x}"),
        Err(ShellError::UnsupportedModifier(_))
    ));
}

#[test]
fn modifiers() {
    assert_eq!(word("${X:-def}").unwrap(), "def");
    assert_eq!(word("${E:-def}").unwrap(), "def");
    assert_eq!(word("${E-def}").unwrap(), "");
    assert_eq!(word("${PWD:+set}").unwrap(), "set");
    assert_eq!(word("${E+set}").unwrap(), "set");
    assert_eq!(word("${E:+set}").unwrap(), "");
    assert!(word("${X:?}").unwrap_err().is_unset_variable());
    assert_eq!(word("${E?}").unwrap(), "");
    assert_eq!(word("${E:?need it}").unwrap_err().to_string(), "E: need it");
}

#[test]
fn patterns() {
    let e: BTreeMap<String, String> = [("P".to_string(), "abcabc.tar.gz".to_string())]
        .into_iter()
        .collect();
    let w = |s: &str| Lexer::new('\\').process_word(s, &e).unwrap();
    assert_eq!(w("${P#*b}"), "cabc.tar.gz");
    assert_eq!(w("${P##*b}"), "c.tar.gz");
    assert_eq!(w("${P%.*}"), "abcabc.tar");
    assert_eq!(w("${P%%.*}"), "abcabc");
    assert_eq!(w("${P/b/X}"), "aXcabc.tar.gz");
    assert_eq!(w("${P//b/X}"), "aXcaXc.tar.gz");
    assert_eq!(w("${P//?/-}"), "-------------");
    assert_eq!(w("${P/\\*/x}"), "abcabc.tar.gz");
    assert_eq!(w("${P#\\}}"), "abcabc.tar.gz");
}

#[test]
fn words_split_outside_quotes() {
    let l = Lexer::new('\\');
    let env = env();
    assert_eq!(
        l.process_words("a b  'c d' \"$PWD x\"", &env).unwrap(),
        ["a", "b", "c d", "/home x"]
    );
    assert_eq!(l.process_words("x$SHELL y", &env).unwrap(), ["xbash", "y"]);
    assert_eq!(l.process_words("'' a", &env).unwrap(), ["a"]);
}

#[test]
fn matches_are_recorded() {
    let e = Lexer::new('\\')
        .process_word_with_matches("$PWD ${NOPE:-x}", &env())
        .unwrap();
    assert!(e.matched.contains("PWD"));
    assert!(e.unmatched.contains("NOPE"));
}

#[test]
fn skip_unset_keeps_references() {
    let mut l = Lexer::new('\\');
    l.skip_unset_env = true;
    assert_eq!(
        l.process_word("$X ${Y} ${Z:-d}", &env()).unwrap(),
        "$X ${Y} ${Z:-d}"
    );
}

#[test]
fn hostile_patterns_stay_fast() {
    let e: BTreeMap<String, String> = [("P".to_string(), "a".repeat(3000))].into_iter().collect();
    let l = Lexer::new('\\');
    assert_eq!(
        l.process_word("${P#*a*a*a*a*a*a*b}", &e).unwrap().len(),
        3000
    );
}
