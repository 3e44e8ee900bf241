//! Compile resolved rules into a classic BPF program for
//! `seccomp(SECCOMP_SET_MODE_FILTER)`.
//!
//! Shape, per architecture the filter knows (dispatch on `seccomp_data.arch`):
//! in an allowlist (default action not allow), numbers above the highest
//! one the profile names fail with ENOSYS (a syscall newer than the
//! profile, as runc does, so libc falls back to the older call); each syscall with argument rules or a non-allow action gets
//! its own small block; the plain allowed numbers are checked as ranges. An
//! architecture the filter does not know (x32, a foreign ABI) gets ENOSYS,
//! as on a kernel built without it. Every conditional jump is short (the
//! blocks are small); only the architecture dispatch uses `JA`.

use super::profile::{Action, Arg, Op, Resolved};

/// One `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JA: u16 = 0x05;
const JEQ: u16 = 0x15;
const JGT: u16 = 0x25;
const JGE: u16 = 0x35;
const RET_K: u16 = 0x06;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// The kernel's limit on a filter's length (BPF_MAXINSNS).
pub(super) const MAX_INSNS: usize = 4096;

pub(super) fn ret_value(a: Action) -> u32 {
    match a {
        Action::Allow => RET_ALLOW,
        Action::Errno(e) => RET_ERRNO | (e & 0xffff),
        Action::KillThread => RET_KILL_THREAD,
        Action::KillProcess => RET_KILL_PROCESS,
        Action::Trap => RET_TRAP,
        Action::Log => RET_LOG,
    }
}

/// A jump target: the next instruction or a label.
#[derive(Clone, Copy)]
enum To {
    Next,
    L(usize),
}

struct Pending {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

/// A tiny assembler: instructions with symbolic targets, resolved at the end.
#[derive(Default)]
struct Asm {
    code: Vec<Pending>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.code.len());
    }
    fn op(&mut self, code: u16, k: u32) {
        self.code.push(Pending {
            code,
            k,
            jt: To::Next,
            jf: To::Next,
        });
    }
    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.code.push(Pending { code, k, jt, jf });
    }
    fn ld(&mut self, off: u32) {
        self.op(LD_W_ABS, off);
    }
    fn ret(&mut self, v: u32) {
        self.op(RET_K, v);
    }
    fn ja(&mut self, l: usize) {
        self.jump(JA, 0, To::L(l), To::Next);
    }

    fn finish(self) -> Result<Vec<Insn>, String> {
        let pos = |i: usize, t: To| -> Result<u32, String> {
            match t {
                To::Next => Ok(0),
                To::L(l) => {
                    let at = self.labels[l].ok_or("unbound label")?;
                    at.checked_sub(i + 1)
                        .map(|d| d as u32)
                        .ok_or_else(|| "backward jump".to_string())
                }
            }
        };
        let mut out = Vec::with_capacity(self.code.len());
        for (i, p) in self.code.iter().enumerate() {
            let (jt, jf, k) = if p.code == JA {
                (0, 0, pos(i, p.jt)?)
            } else {
                let (t, f) = (pos(i, p.jt)?, pos(i, p.jf)?);
                if t > 255 || f > 255 {
                    return Err(format!("jump of {} instructions", t.max(f)));
                }
                (t as u8, f as u8, p.k)
            };
            out.push(Insn {
                code: p.code,
                jt,
                jf,
                k,
            });
        }
        Ok(out)
    }
}

/// One architecture's part of the filter.
pub(super) struct ArchRules<'a> {
    /// `AUDIT_ARCH_*`.
    pub audit_arch: u32,
    /// Numbers at or above this are another ABI on the same audit arch
    /// (x32's `__X32_SYSCALL_BIT`); `u32::MAX` if none.
    pub foreign_from: u32,
    pub rules: &'a Resolved,
}

/// Compile the filter. `default` is the action for calls no rule matches.
pub(super) fn compile(arches: &[ArchRules<'_>], default: Action) -> Result<Vec<Insn>, String> {
    let mut a = Asm::default();
    let enosys = ret_value(Action::Errno(libc::ENOSYS as u32));
    let blocks: Vec<usize> = arches.iter().map(|_| a.label()).collect();
    a.ld(OFF_ARCH);
    for (arch, block) in arches.iter().zip(&blocks) {
        let skip = a.label();
        a.jump(JEQ, arch.audit_arch, To::Next, To::L(skip));
        a.ja(*block);
        a.bind(skip);
    }
    a.ret(enosys);
    for (arch, block) in arches.iter().zip(&blocks) {
        a.bind(*block);
        arch_block(&mut a, arch, ret_value(default), enosys);
    }
    let prog = a.finish()?;
    if prog.len() > MAX_INSNS {
        return Err(format!(
            "the filter has {} instructions; the kernel takes {MAX_INSNS}",
            prog.len()
        ));
    }
    Ok(prog)
}

fn arch_block(a: &mut Asm, arch: &ArchRules<'_>, default: u32, enosys: u32) {
    a.ld(OFF_NR);
    if arch.foreign_from != u32::MAX {
        let ok = a.label();
        a.jump(JGE, arch.foreign_from, To::Next, To::L(ok));
        a.ret(enosys);
        a.bind(ok);
    }
    // Only an allowlist needs this: a profile that allows by default lets
    // new calls through anyway.
    if default != RET_ALLOW && default != RET_LOG {
        let newest = arch.rules.keys().next_back().copied().unwrap_or(0);
        let known = a.label();
        a.jump(JGT, newest, To::Next, To::L(known));
        a.ret(enosys);
        a.bind(known);
    }

    let plain_allow =
        |r: &[(Vec<Arg>, Action)]| r.iter().any(|(c, x)| c.is_empty() && *x == Action::Allow);
    for (nr, rules) in arch.rules.iter().filter(|(_, r)| !plain_allow(r)) {
        let next = a.label();
        a.ld(OFF_NR);
        a.jump(JEQ, *nr, To::Next, To::L(next));
        syscall_block(a, rules, default);
        a.bind(next);
    }

    // The plain allowed numbers as ranges, ascending; A still holds nr
    // (each block above reloads it before its test).
    a.ld(OFF_NR);
    let allowed: Vec<u32> = arch
        .rules
        .iter()
        .filter(|(_, r)| plain_allow(r))
        .map(|(nr, _)| *nr)
        .collect();
    for (lo, hi) in ranges(&allowed) {
        let next = a.label();
        let below = a.label();
        a.jump(JGT, hi, To::L(next), To::Next);
        a.jump(JGE, lo, To::Next, To::L(below));
        a.ret(RET_ALLOW);
        a.bind(below);
        a.ret(default);
        a.bind(next);
    }
    a.ret(default);
}

/// Consecutive numbers merged into inclusive ranges.
fn ranges(sorted: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &n in sorted {
        match out.last_mut() {
            Some((_, hi)) if *hi + 1 == n => *hi = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// The rules of one syscall, first match wins; an unconditional rule ends
/// the list; if none matches, the profile's default.
fn syscall_block(a: &mut Asm, rules: &[(Vec<Arg>, Action)], default: u32) {
    let mut ordered: Vec<&(Vec<Arg>, Action)> = rules.iter().filter(|r| !r.0.is_empty()).collect();
    ordered.extend(rules.iter().filter(|r| r.0.is_empty()).take(1));
    for (conds, action) in ordered {
        let fail = a.label();
        for c in conds {
            compare(a, c, fail);
        }
        a.ret(ret_value(*action));
        a.bind(fail);
    }
    a.ret(default);
}

/// Fall through when `arg[index] op value` holds (64-bit, as libseccomp
/// compares on 64-bit ABIs), else jump to `fail`.
fn compare(a: &mut Asm, c: &Arg, fail: usize) {
    let lo_off = OFF_ARGS + 8 * c.index as u32;
    let hi_off = lo_off + 4;
    let (vhi, vlo) = ((c.value >> 32) as u32, c.value as u32);
    let pass = a.label();
    let f = To::L(fail);
    let p = To::L(pass);
    match c.op {
        Op::Eq => {
            a.ld(hi_off);
            a.jump(JEQ, vhi, To::Next, f);
            a.ld(lo_off);
            a.jump(JEQ, vlo, To::Next, f);
        }
        Op::Ne => {
            a.ld(hi_off);
            a.jump(JEQ, vhi, To::Next, p);
            a.ld(lo_off);
            a.jump(JEQ, vlo, f, To::Next);
        }
        Op::MaskedEq => {
            let (dhi, dlo) = ((c.value_two >> 32) as u32, c.value_two as u32);
            a.ld(hi_off);
            a.op(ALU_AND_K, vhi);
            a.jump(JEQ, dhi, To::Next, f);
            a.ld(lo_off);
            a.op(ALU_AND_K, vlo);
            a.jump(JEQ, dlo, To::Next, f);
        }
        Op::Gt | Op::Ge => {
            a.ld(hi_off);
            a.jump(JGT, vhi, p, To::Next);
            a.jump(JEQ, vhi, To::Next, f);
            a.ld(lo_off);
            let code = if c.op == Op::Gt { JGT } else { JGE };
            a.jump(code, vlo, To::Next, f);
        }
        Op::Lt | Op::Le => {
            a.ld(hi_off);
            a.jump(JGT, vhi, f, To::Next);
            a.jump(JEQ, vhi, To::Next, p);
            a.ld(lo_off);
            // lo < v  <=>  !(lo >= v);  lo <= v  <=>  !(lo > v).
            let code = if c.op == Op::Lt { JGE } else { JGT };
            a.jump(code, vlo, f, To::Next);
        }
    }
    a.bind(pass);
}
