//! Docker's JSON seccomp profile format (`docker run --security-opt
//! seccomp=PROFILE.json`), read into a [`Profile`]. Supported: defaultAction
//! and defaultErrnoRet, and per entry names (or the old single name),
//! action, errnoRet, args, includes and excludes (caps, arches, minKernel).
//! `architectures`/`archMap` are ignored: the filter always covers the
//! host's ABIs (see [`super::Filter::compile`]). Actions that need a
//! listener or a tracer (NOTIFY, TRACE) are refused.

use serde_json::Value;

use super::profile::{Action, Arg, Cond, Op, Profile, Rule};

fn action(v: &Value, errno: Option<&Value>, default_errno: u32) -> Result<Action, String> {
    let errno = match errno {
        Some(e) => e
            .as_u64()
            .filter(|e| *e <= 0xffff)
            .ok_or_else(|| format!("errnoRet {e} is not an errno"))? as u32,
        None => default_errno,
    };
    Ok(match v.as_str().ok_or("action must be a string")? {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        other => return Err(format!("action {other} is not supported")),
    })
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what} must be strings"))
            })
            .collect(),
        Some(_) => Err(format!("{what} must be a list")),
    }
}

fn cond(v: Option<&Value>) -> Result<Cond, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Cond::default());
    };
    let min_kernel = match v.get("minKernel").and_then(Value::as_str) {
        None => None,
        Some(k) => {
            let mut p = k.split('.').map(str::parse::<u32>);
            match (p.next(), p.next()) {
                (Some(Ok(a)), Some(Ok(b))) => Some((a, b)),
                _ => return Err(format!("minKernel {k:?} is not MAJOR.MINOR")),
            }
        }
    };
    Ok(Cond {
        caps: strings(v.get("caps"), "caps")?,
        arches: strings(v.get("arches"), "arches")?,
        min_kernel,
    })
}

fn arg(v: &Value) -> Result<Arg, String> {
    let num = |k: &str| {
        v.get(k).map_or(Ok(0), |n| {
            n.as_u64().ok_or(format!("args {k} must be a number"))
        })
    };
    let op = match v.get("op").and_then(Value::as_str).unwrap_or_default() {
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
        other => return Err(format!("argument operator {other:?} is not known")),
    };
    let index = num("index")?;
    if index > 5 {
        return Err(format!("argument index {index} is not 0..5"));
    }
    Ok(Arg {
        index: index as u8,
        value: num("value")?,
        value_two: num("valueTwo")?,
        op,
    })
}

impl Profile {
    /// Read a profile in Docker's JSON format.
    pub fn from_docker_json(text: &str) -> Result<Profile, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let default_errno = match v.get("defaultErrnoRet") {
            Some(e) => e
                .as_u64()
                .filter(|e| *e <= 0xffff)
                .ok_or("bad defaultErrnoRet")? as u32,
            None => libc::EPERM as u32,
        };
        let default_action = action(
            v.get("defaultAction").ok_or("defaultAction is missing")?,
            None,
            default_errno,
        )?;
        let mut rules = Vec::new();
        let entries = match v.get("syscalls") {
            None | Some(Value::Null) => &Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => return Err("syscalls must be a list".into()),
        };
        for e in entries {
            let mut names = strings(e.get("names"), "names")?;
            if let Some(n) = e.get("name").and_then(Value::as_str) {
                names.push(n.to_string());
            }
            let args = match e.get("args") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.iter().map(arg).collect::<Result<_, _>>()?,
                Some(_) => return Err("args must be a list".into()),
            };
            rules.push(Rule {
                names,
                action: action(
                    e.get("action").ok_or("a syscalls entry has no action")?,
                    e.get("errnoRet"),
                    libc::EPERM as u32,
                )?,
                args,
                includes: cond(e.get("includes"))?,
                excludes: cond(e.get("excludes"))?,
            });
        }
        Ok(Profile {
            default_action,
            rules,
        })
    }
}
