//! The compiled filter, run through a small classic-BPF interpreter on
//! made-up `seccomp_data`, answers as Docker's default profile does.

use super::bpf::Insn;
use super::*;

const EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;
const ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
const ALLOW: u32 = 0x7fff_0000;

/// Evaluate `prog` for one call the way the kernel does.
fn run(prog: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            0x20 => {
                let k = i.k as usize;
                acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
            }
            0x54 => acc &= i.k,
            0x05 => pc += i.k as usize,
            0x15 | 0x25 | 0x35 => {
                let t = match i.code {
                    0x15 => acc == i.k,
                    0x25 => acc > i.k,
                    _ => acc >= i.k,
                };
                pc += if t { i.jt } else { i.jf } as usize;
            }
            0x06 => return i.k,
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
}

fn nr(table: &[(&str, u32)], name: &str) -> u32 {
    table.iter().find(|(n, _)| *n == name).unwrap().1
}

fn default_prog() -> Vec<Insn> {
    docker_default().unwrap().prog.clone()
}

#[cfg(target_arch = "x86_64")]
#[test]
fn docker_default_on_x86_64_and_its_i386_abi() {
    let p = default_prog();
    assert!(p.len() < bpf::MAX_INSNS);
    let t = nr_x86_64::TABLE;
    let call = |name: &str, args: [u64; 6]| run(&p, AUDIT_ARCH_X86_64, nr(t, name), args);
    for ok in [
        "read",
        "write",
        "execve",
        "openat",
        "fchmodat2",
        "statx",
        "chroot",
        "ptrace",
    ] {
        assert_eq!(call(ok, [0; 6]), ALLOW, "{ok}");
    }
    for denied in [
        "unshare",
        "setns",
        "mount",
        "keyctl",
        "add_key",
        "bpf",
        "pivot_root",
    ] {
        assert_eq!(call(denied, [0; 6]), EPERM, "{denied}");
    }
    // clone only without namespace flags; clone3 says ENOSYS so glibc uses clone.
    let newuser = libc::CLONE_NEWUSER as u64;
    assert_eq!(call("clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        call("clone", [newuser | libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
        EPERM
    );
    assert_eq!(call("clone3", [0; 6]), ENOSYS);
    // socket: every family but AF_ALG (38) and AF_VSOCK (40).
    assert_eq!(call("socket", [libc::AF_INET as u64, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call("socket", [39, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        call("socket", [libc::AF_VSOCK as u64, 0, 0, 0, 0, 0]),
        EPERM
    );
    assert_eq!(call("socket", [38, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(call("socket", [1 << 32 | 2, 0, 0, 0, 0, 0]), ALLOW); // > 40 as 64-bit
                                                                     // personality: only the listed values (0xffffffff queries).
    for v in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(call("personality", [v, 0, 0, 0, 0, 0]), ALLOW, "{v:#x}");
    }
    assert_eq!(call("personality", [0x0040_0000, 0, 0, 0, 0, 0]), EPERM);
    // Newer than the profile: ENOSYS; x32 and unknown ABIs: ENOSYS.
    assert_eq!(call("open_tree_attr", [0; 6]), ENOSYS);
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, 0x4000_0000, [0; 6]), ENOSYS);
    assert_eq!(run(&p, 0xC000_00B7, 0, [0; 6]), ENOSYS);
    // i386: its own numbers.
    let t32 = nr_i386::TABLE;
    assert_eq!(
        run(&p, AUDIT_ARCH_I386, nr(t32, "socketcall"), [0; 6]),
        ALLOW
    );
    assert_eq!(run(&p, AUDIT_ARCH_I386, nr(t32, "unshare"), [0; 6]), EPERM);
    assert_eq!(run(&p, AUDIT_ARCH_I386, nr(t32, "clone3"), [0; 6]), ENOSYS);
}

#[test]
fn a_profile_with_cap_sys_admin_allows_namespaces_like_docker() {
    let mut ctx = Context::host();
    ctx.caps.push("CAP_SYS_ADMIN".into());
    let p = Filter::compile(&Profile::docker_default(), &ctx)
        .unwrap()
        .prog;
    let t = if cfg!(target_arch = "x86_64") {
        nr_x86_64::TABLE
    } else {
        nr_aarch64::TABLE
    };
    let arch = if cfg!(target_arch = "x86_64") {
        AUDIT_ARCH_X86_64
    } else {
        AUDIT_ARCH_AARCH64
    };
    assert_eq!(run(&p, arch, nr(t, "unshare"), [0; 6]), ALLOW);
    assert_eq!(run(&p, arch, nr(t, "clone3"), [0; 6]), ALLOW);
}

#[test]
fn every_comparison_operator_is_64_bit() {
    let json = |op: &str, v: u64| {
        format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":["read"],"action":"SCMP_ACT_ALLOW",
            "args":[{{"index":1,"value":{v},"valueTwo":4294967296,"op":"{op}"}}]}}]}}"#
        )
    };
    let big = 1u64 << 32;
    type Case = (&'static str, u64, fn(u64) -> bool);
    let cases: [Case; 7] = [
        ("SCMP_CMP_EQ", big + 5, |a| a == (1 << 32) + 5),
        ("SCMP_CMP_NE", big + 5, |a| a != (1 << 32) + 5),
        ("SCMP_CMP_LT", big + 5, |a| a < (1 << 32) + 5),
        ("SCMP_CMP_LE", big + 5, |a| a <= (1 << 32) + 5),
        ("SCMP_CMP_GT", big + 5, |a| a > (1 << 32) + 5),
        ("SCMP_CMP_GE", big + 5, |a| a >= (1 << 32) + 5),
        ("SCMP_CMP_MASKED_EQ", big | 0xff, |a| {
            a & ((1 << 32) | 0xff) == 1 << 32
        }),
    ];
    let (t, arch) = if cfg!(target_arch = "x86_64") {
        (nr_x86_64::TABLE, AUDIT_ARCH_X86_64)
    } else {
        (nr_aarch64::TABLE, AUDIT_ARCH_AARCH64)
    };
    for (op, v, want) in cases {
        let prof = Profile::from_docker_json(&json(op, v)).unwrap();
        let p = Filter::compile(&prof, &Context::host()).unwrap().prog;
        for a in [
            0,
            4,
            5,
            6,
            big,
            big + 4,
            big + 5,
            big + 6,
            2 * big + 5,
            u64::MAX,
        ] {
            let got = run(&p, arch, nr(t, "read"), [0, a, 0, 0, 0, 0]);
            assert_eq!(got == ALLOW, want(a), "{op} {v:#x} on {a:#x}");
        }
    }
}

#[test]
fn an_allow_by_default_profile_lets_calls_newer_than_it_through() {
    let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#;
    let p = Filter::compile(&Profile::from_docker_json(json).unwrap(), &Context::host())
        .unwrap()
        .prog;
    let (t, arch) = if cfg!(target_arch = "x86_64") {
        (nr_x86_64::TABLE, AUDIT_ARCH_X86_64)
    } else {
        (nr_aarch64::TABLE, AUDIT_ARCH_AARCH64)
    };
    assert_eq!(run(&p, arch, nr(t, "mkdirat"), [0; 6]), 0x0005_0000 | 13);
    for ok in ["read", "close_range", "clone3", "open_tree_attr"] {
        assert_eq!(run(&p, arch, nr(t, ok), [0; 6]), ALLOW, "{ok}");
    }
}

#[test]
fn bad_json_profiles_are_errors() {
    for bad in [
        "",
        "{}",
        r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"]}]}"#,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":9,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
    ] {
        assert!(Profile::from_docker_json(bad).is_err(), "{bad}");
    }
}

#[test]
fn bytes_roundtrip_and_garbage_is_refused() {
    let f = docker_default().unwrap();
    assert_eq!(Filter::from_bytes(&f.to_bytes()).unwrap(), *f);
    assert!(Filter::from_bytes(&[]).is_err());
    assert!(Filter::from_bytes(&[0; 7]).is_err());
}
