//! `COPY/ADD --chmod` values: octal (`0755`, at most `07777`) or symbolic
//! as chmod(1) takes them (`u+x`, `go-w`, `a+X`, `u=rwx,go=rx`, `g=u`),
//! applied with a zero umask as BuildKit does.

use std::fmt;

/// A parsed `--chmod` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chmod {
    /// Every copied entry gets exactly this mode.
    Octal(u32),
    /// Clauses applied in order to each entry's own mode.
    Symbolic(Vec<Action>),
}

/// One `op perms` of a clause, with the clause's `who` resolved to bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// The mode bits the clause may touch (`u` = 0o4700 ...).
    who: u32,
    op: Op,
    perms: Perms,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Set,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Perms {
    /// `r w x s t` bits, and whether `X` was given.
    Bits { bits: u32, cond_x: bool },
    /// `u`, `g` or `o`: that class's current permissions (as `rwx` bits
    /// 0..=7), copied to the clause's classes.
    Copy(u32),
}

/// A `--chmod` value that is neither octal nor symbolic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidChmod(pub String);

impl fmt::Display for InvalidChmod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid --chmod value {:?}: use an octal mode like 0755 (at most 07777) or a symbolic one like u+x,go-w",
            self.0
        )
    }
}

const USER: u32 = 0o4700;
const GROUP: u32 = 0o2070;
const OTHER: u32 = 0o0007;
const ALL: u32 = USER | GROUP | OTHER;
const STICKY: u32 = 0o1000;

impl Chmod {
    /// Parses a value; one that starts with a digit must be octal.
    pub fn parse(value: &str) -> Result<Chmod, InvalidChmod> {
        let bad = || InvalidChmod(value.to_string());
        if value.starts_with(|c: char| c.is_ascii_digit()) {
            return match u32::from_str_radix(value, 8) {
                Ok(m) if m <= 0o7777 => Ok(Chmod::Octal(m)),
                _ => Err(bad()),
            };
        }
        let mut actions = Vec::new();
        for clause in value.split(',') {
            parse_clause(clause, &mut actions).ok_or_else(bad)?;
        }
        Ok(Chmod::Symbolic(actions))
    }

    /// The mode an entry whose mode is `mode` gets (permission bits,
    /// setuid, setgid, sticky).
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let actions = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(actions) => actions,
        };
        let original = mode & 0o7777;
        // `X` looks at the mode before any clause, as chmod(1) does.
        let x_ok = is_dir || original & 0o111 != 0;
        actions.iter().fold(original, |m, a| a.apply(m, x_ok))
    }

    /// The mode of the parent directories a COPY creates: BuildKit makes
    /// them with an octal `--chmod`'s permission bits, else 0755.
    pub fn parent_dir_mode(&self) -> u32 {
        match self {
            Chmod::Octal(m) => m & 0o777,
            Chmod::Symbolic(_) => 0o755,
        }
    }
}

impl Action {
    fn apply(&self, mode: u32, x_ok: bool) -> u32 {
        let value = match self.perms {
            Perms::Bits { bits, cond_x } => bits | if cond_x && x_ok { 0o111 } else { 0 },
            Perms::Copy(shift) => {
                let rwx = (mode >> shift) & 0o7;
                rwx << 6 | rwx << 3 | rwx
            }
        } & self.who;
        match self.op {
            Op::Add => mode | value,
            Op::Remove => mode & !value,
            Op::Set => mode & !self.who | value,
        }
    }
}

/// `who* (op perms)+` appended to `out`; None on a syntax error.
fn parse_clause(clause: &str, out: &mut Vec<Action>) -> Option<()> {
    let mut who = 0;
    let mut rest = clause;
    while let Some(c) = rest.chars().next() {
        who |= match c {
            'u' => USER,
            'g' => GROUP,
            'o' => OTHER,
            'a' => ALL,
            _ => break,
        };
        rest = &rest[1..];
    }
    // No `who` means all classes (the umask is zero).
    let who = if who == 0 { ALL } else { who };
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let op = match rest.as_bytes()[0] {
            b'+' => Op::Add,
            b'-' => Op::Remove,
            b'=' => Op::Set,
            _ => return None,
        };
        rest = &rest[1..];
        let end = rest.find(['+', '-', '=']).unwrap_or(rest.len());
        let (perms, tail) = rest.split_at(end);
        rest = tail;
        let (perms, sticky) = parse_perms(perms, who, op)?;
        out.push(Action {
            who: who | sticky,
            op,
            perms,
        });
    }
    Some(())
}

/// A perm list (`rwxXst`, or one of `u g o`) for `op`, and the sticky bit when `t`
/// applies (it belongs to no class; `o+t` does nothing, as in chmod(1)).
fn parse_perms(perms: &str, who: u32, op: Op) -> Option<(Perms, u32)> {
    let shift = match perms {
        "u" => Some(6),
        "g" => Some(3),
        "o" => Some(0),
        _ => None,
    };
    if let Some(shift) = shift {
        return Some((Perms::Copy(shift), 0));
    }
    let (mut bits, mut cond_x, mut sticky) = (0, false, 0);
    for c in perms.chars() {
        match c {
            'r' => bits |= 0o444,
            'w' => bits |= 0o222,
            'x' => bits |= 0o111,
            // Removing `X` removes execute bits whatever the entry is.
            'X' if op == Op::Remove => bits |= 0o111,
            'X' => cond_x = true,
            's' => bits |= 0o6000,
            't' if who & !OTHER != 0 => {
                bits |= STICKY;
                sticky = STICKY;
            }
            't' => {}
            _ => return None,
        }
    }
    Some((Perms::Bits { bits, cond_x }, sticky))
}

#[cfg(test)]
mod tests {
    use super::Chmod;

    fn apply(value: &str, mode: u32, is_dir: bool) -> u32 {
        Chmod::parse(value).unwrap().apply(mode, is_dir)
    }

    #[test]
    fn octal_values_replace_the_mode() {
        assert_eq!(apply("0644", 0o700, false), 0o644);
        assert_eq!(apply("777", 0o600, false), 0o777);
        assert_eq!(apply("0", 0o755, true), 0);
        assert_eq!(apply("4755", 0o600, false), 0o4755);
        assert_eq!(Chmod::parse("0770").unwrap().parent_dir_mode(), 0o770);
        assert_eq!(Chmod::parse("4755").unwrap().parent_dir_mode(), 0o755);
    }

    #[test]
    fn symbolic_values_change_each_entrys_mode() {
        for (value, mode, is_dir, want) in [
            ("u+x", 0o644, false, 0o744),
            ("+x", 0o644, false, 0o755),
            ("go-w", 0o666, false, 0o644),
            ("a+X", 0o644, false, 0o644),
            ("a+X", 0o744, false, 0o755),
            ("a+X", 0o700, true, 0o711),
            ("u=rwx,go=rx", 0o600, false, 0o755),
            ("u=rw,g=r,o=", 0o777, false, 0o640),
            ("a=r", 0o4755, false, 0o444),
            ("g=u", 0o640, false, 0o660),
            ("o=g-w", 0o674, false, 0o675),
            ("u+s", 0o755, false, 0o4755),
            ("g+s", 0o755, true, 0o2755),
            ("+t", 0o777, true, 0o1777),
            ("o+t", 0o777, true, 0o777),
            ("u-x+r", 0o300, false, 0o600),
            ("a-rwx", 0o777, false, 0),
        ] {
            assert_eq!(
                apply(value, mode, is_dir),
                want,
                "{value} on {mode:o} (dir: {is_dir})"
            );
        }
        assert_eq!(Chmod::parse("u+x").unwrap().parent_dir_mode(), 0o755);
    }

    #[test]
    fn values_that_are_neither_are_refused() {
        for bad in [
            "", "64a", "10000", "8", "u", "u+z", "x+u", "u+x,", ",u+x", "u+ug", "rw", "u!x", "+0",
        ] {
            assert!(Chmod::parse(bad).is_err(), "{bad:?} is accepted");
        }
        let said = Chmod::parse("64a").unwrap_err().to_string();
        assert!(said.contains("octal mode like 0755"), "{said}");
    }
}
