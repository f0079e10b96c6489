//! The compiler's output run on a small classic-BPF interpreter, combined as the kernel
//! combines several filters (highest-precedence action; among equals the newest filter).

use super::*;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// A fake syscall table, so the tests do not depend on the build machine's architecture.
fn number(name: &str) -> Option<i64> {
    Some(match name {
        "read" => 0,
        "write" => 1,
        "socket" => 41,
        "clone" => 56,
        "mkdir" => 83,
        "ptrace" => 101,
        "personality" => 135,
        "arch_prctl" => 158,
        "mount" => 165,
        "unshare" => 272,
        "clone3" => 435,
        _ => return None,
    })
}

fn target(caps: u64, arch_name: &'static str, kernel: (u32, u32)) -> Target {
    Target {
        abis: vec![Abi {
            audit: AUDIT_ARCH_X86_64,
            number,
            narrow: false,
        }],
        arch_name,
        caps,
        kernel,
    }
}

fn docker_target() -> Target {
    target(crate::init::DEFAULT_CAPS.bits(), "amd64", (6, 1))
}

fn compiled(json: &str, t: &Target) -> Vec<BpfProgram> {
    let p: Profile = serde_json::from_str(json).unwrap();
    compile(&p, t).unwrap()
}

/// One classic-BPF program on a `seccomp_data`, as the kernel runs it.
fn run_one(prog: &BpfProgram, data: &[u8; 64]) -> u32 {
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let i = &prog[pc];
        pc += 1;
        let jump = |cond: bool, pc: usize| pc + usize::from(if cond { i.jt } else { i.jf });
        match i.code {
            0x20 => {
                let o = i.k as usize; // LD W ABS
                a = u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
            }
            0x54 => a &= i.k,                    // ALU AND K
            0x05 => pc += i.k as usize,          // JA
            0x15 => pc = jump(a == i.k, pc),     // JEQ K
            0x25 => pc = jump(a > i.k, pc),      // JGT K
            0x35 => pc = jump(a >= i.k, pc),     // JGE K
            0x45 => pc = jump(a & i.k != 0, pc), // JSET K
            0x06 => return i.k,                  // RET K
            other => panic!("instruction {other:#x} not emulated"),
        }
    }
}

/// Every filter, combined: the kernel keeps the lowest action value (as signed), walking
/// from the newest filter, replacing only on a strictly lower one.
fn run(filters: &[BpfProgram], arch: u32, nr: i32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, v) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_ne_bytes());
    }
    let action = |r: u32| (r & 0xffff_0000) as i32;
    let mut ret = RET_ALLOW;
    for f in filters.iter().rev() {
        let cur = run_one(f, &data);
        if action(cur) < action(ret) {
            ret = cur;
        }
    }
    ret
}

fn call(filters: &[BpfProgram], name: &str, args: [u64; 6]) -> u32 {
    run(
        filters,
        AUDIT_ARCH_X86_64,
        number(name).unwrap() as i32,
        args,
    )
}

const NO: [u64; 6] = [0; 6];
const EPERM: u32 = RET_ERRNO | 1;
const ENOSYS: u32 = RET_ERRNO | 38;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWNS: u64 = 0x0002_0000;
const FORK_FLAGS: u64 = 0x0120_0011; // CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD

#[test]
fn docker_default_with_docker_caps() {
    let f = compiled(DOCKER_DEFAULT_JSON, &docker_target());
    assert_eq!(f.len(), 2, "the allow-list and clone3's ENOSYS");
    assert_eq!(call(&f, "read", NO), RET_ALLOW);
    assert_eq!(call(&f, "mkdir", NO), RET_ALLOW);
    // The namespace calls of CAP_SYS_ADMIN's entry do not apply.
    assert_eq!(call(&f, "unshare", [CLONE_NEWUSER, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&f, "mount", NO), EPERM);
    // clone: allowed unless a namespace flag is set (MASKED_EQ 0x7e020000 == 0).
    assert_eq!(call(&f, "clone", [FORK_FLAGS, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(
        call(&f, "clone", [FORK_FLAGS | CLONE_NEWUSER, 0, 0, 0, 0, 0]),
        EPERM
    );
    assert_eq!(call(&f, "clone", [CLONE_NEWNS, 0, 0, 0, 0, 0]), EPERM);
    // clone3 cannot be inspected (flags in memory): ENOSYS, so libc falls back to clone.
    assert_eq!(call(&f, "clone3", NO), ENOSYS);
    // socket: every family but AF_VSOCK (40).
    assert_eq!(call(&f, "socket", [2, 1, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call(&f, "socket", [40, 1, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&f, "socket", [39, 1, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call(&f, "socket", [41, 1, 0, 0, 0, 0]), RET_ALLOW);
    // personality: the listed values only, compared on 64 bits.
    assert_eq!(
        call(&f, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(call(&f, "personality", [8, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call(&f, "personality", [1, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&f, "personality", [1 << 32, 0, 0, 0, 0, 0]), EPERM);
    // arch_prctl is in the amd64-only entry; ptrace needs kernel 4.8.
    assert_eq!(call(&f, "arch_prctl", NO), RET_ALLOW);
    assert_eq!(call(&f, "ptrace", NO), RET_ALLOW);
    // A number no entry names, and a call of another ABI.
    assert_eq!(run(&f, AUDIT_ARCH_X86_64, 999, NO), EPERM);
    assert_eq!(run(&f, 0x4000_0003, 0, NO), RET_KILL_PROCESS);
}

#[test]
fn docker_default_filtered_by_caps_arch_and_kernel() {
    let sys_admin = 1u64 << 21;
    let f = compiled(
        DOCKER_DEFAULT_JSON,
        &target(
            crate::init::DEFAULT_CAPS.bits() | sys_admin,
            "amd64",
            (6, 1),
        ),
    );
    assert_eq!(f.len(), 1, "no ERRNO entry applies with CAP_SYS_ADMIN");
    assert_eq!(
        call(&f, "unshare", [CLONE_NEWUSER, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(call(&f, "clone", [CLONE_NEWUSER, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call(&f, "clone3", NO), RET_ALLOW);
    assert_eq!(call(&f, "mount", NO), RET_ALLOW);

    let arm = compiled(
        DOCKER_DEFAULT_JSON,
        &target(crate::init::DEFAULT_CAPS.bits(), "arm64", (6, 1)),
    );
    assert_eq!(call(&arm, "arch_prctl", NO), EPERM);
    assert_eq!(call(&arm, "read", NO), RET_ALLOW);

    let old = compiled(
        DOCKER_DEFAULT_JSON,
        &target(crate::init::DEFAULT_CAPS.bits(), "amd64", (4, 4)),
    );
    assert_eq!(call(&old, "ptrace", NO), EPERM);
    assert_eq!(call(&old, "read", NO), RET_ALLOW);
}

#[test]
fn argument_operators() {
    let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":10,"op":"SCMP_CMP_NE"}]},
        {"names":["write"],"action":"SCMP_ACT_ALLOW","args":[
            {"index":1,"value":4294967296,"op":"SCMP_CMP_GE"},
            {"index":1,"value":8589934592,"op":"SCMP_CMP_LT"}]},
        {"names":["mkdir"],"action":"SCMP_ACT_ALLOW","args":[{"index":5,"value":3,"op":"SCMP_CMP_LE"}]},
        {"names":["mkdir"],"action":"SCMP_ACT_ALLOW","args":[{"index":5,"value":100,"op":"SCMP_CMP_GT"}]},
        {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":2,"value":255,"valueTwo":17,"op":"SCMP_CMP_MASKED_EQ"}]},
        {"name":"mount","action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":7,"op":"SCMP_CMP_EQ"}]}
    ]}"#;
    let f = compiled(json, &docker_target());
    assert_eq!(f.len(), 1);
    assert_eq!(call(&f, "read", [9, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call(&f, "read", [10, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&f, "read", [10 | 1 << 32, 0, 0, 0, 0, 0]), RET_ALLOW);
    // ANDed: 2^32 <= arg1 < 2^33, decided by the high word.
    assert_eq!(call(&f, "write", [0, 1 << 32, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call(&f, "write", [0, (1 << 33) - 1, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call(&f, "write", [0, 1 << 33, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&f, "write", [0, 0xffff_ffff, 0, 0, 0, 0]), EPERM);
    // ORed entries of one syscall.
    assert_eq!(call(&f, "mkdir", [0, 0, 0, 0, 0, 3]), RET_ALLOW);
    assert_eq!(call(&f, "mkdir", [0, 0, 0, 0, 0, 4]), EPERM);
    assert_eq!(call(&f, "mkdir", [0, 0, 0, 0, 0, 100]), EPERM);
    assert_eq!(call(&f, "mkdir", [0, 0, 0, 0, 0, 101]), RET_ALLOW);
    // MASKED_EQ: arg & value == valueTwo.
    assert_eq!(call(&f, "socket", [0, 0, 0x311, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call(&f, "socket", [0, 0, 0x312, 0, 0, 0]), EPERM);
    assert_eq!(call(&f, "mount", [7, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call(&f, "mount", [8, 0, 0, 0, 0, 0]), EPERM);
    // An unconditional entry for a syscall wins over its conditional ones.
    let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
        {"names":["read","no_such_call"],"action":"SCMP_ACT_ALLOW"}]}"#;
    let f = compiled(json, &docker_target());
    assert_eq!(call(&f, "read", [5, 0, 0, 0, 0, 0]), RET_ALLOW);
}

#[test]
fn several_actions() {
    // Deny-list: default ALLOW, one errno and one trap; no base filter.
    let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["mkdir"],"action":"SCMP_ACT_ERRNO"},
        {"names":["mount"],"action":"SCMP_ACT_ERRNO","errnoRet":22},
        {"names":["unshare"],"action":"SCMP_ACT_TRAP"},
        {"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#;
    let f = compiled(json, &docker_target());
    assert_eq!(f.len(), 3);
    assert_eq!(call(&f, "mkdir", NO), EPERM);
    assert_eq!(call(&f, "mount", NO), RET_ERRNO | 22);
    assert_eq!(call(&f, "unshare", NO), RET_TRAP);
    assert_eq!(call(&f, "read", NO), RET_ALLOW);
    assert_eq!(call(&f, "write", NO), RET_ALLOW);

    // A default of higher precedence than an entry's action (KILL_PROCESS vs ERRNO, LOG): the
    // base filter must allow what the entries match, or the default would win.
    let json = r#"{"defaultAction":"SCMP_ACT_KILL_PROCESS","syscalls":[
        {"names":["read"],"action":"SCMP_ACT_ALLOW"},
        {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":5},
        {"names":["write"],"action":"SCMP_ACT_LOG","args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
        {"names":["mount"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#;
    let f = compiled(json, &docker_target());
    assert_eq!(
        f.len(),
        3,
        "base, ERRNO(5), LOG; the entry equal to the default is dropped"
    );
    assert_eq!(call(&f, "read", NO), RET_ALLOW);
    assert_eq!(call(&f, "mkdir", NO), RET_ERRNO | 5);
    assert_eq!(call(&f, "write", [2, 0, 0, 0, 0, 0]), RET_LOG);
    assert_eq!(call(&f, "write", [1, 0, 0, 0, 0, 0]), RET_KILL_PROCESS);
    assert_eq!(call(&f, "mount", NO), RET_KILL_PROCESS);
    assert_eq!(call(&f, "unshare", NO), RET_KILL_PROCESS);

    // Same precedence as the default (ERRNO vs ERRNO): the newer filter's errno wins.
    let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[
        {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
        {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#;
    let f = compiled(json, &docker_target());
    assert_eq!(call(&f, "clone3", NO), ENOSYS);
    assert_eq!(call(&f, "mkdir", NO), EPERM);
    assert_eq!(call(&f, "read", NO), EPERM);
}

fn error(json: &str) -> String {
    match serde_json::from_str::<Profile>(json) {
        Err(e) => SeccompError::Json(e.to_string()).to_string(),
        Ok(p) => compile(&p, &docker_target()).unwrap_err().to_string(),
    }
}

#[test]
fn bad_profiles() {
    assert!(error("{").starts_with("invalid seccomp profile: EOF"));
    assert!(error(r#"{"defaultAction":1}"#).starts_with("invalid seccomp profile: invalid type"));
    assert_eq!(
        error(r#"{"syscalls":[]}"#),
        "invalid seccomp profile: defaultAction is missing"
    );
    assert_eq!(
        error(r#"{"defaultAction":"SCMP_ACT_DENY"}"#),
        r#"invalid seccomp profile: unknown action "SCMP_ACT_DENY""#
    );
    assert_eq!(
        error(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_XX"}]}]}"#
        ),
        r#"invalid seccomp profile: unknown operator "SCMP_CMP_XX""#
    );
    assert_eq!(
        error(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#
        ),
        "invalid seccomp profile: argument index 6 out of range (0 to 5)"
    );
    assert_eq!(
        error(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ALLOW"}]}"#
        ),
        "invalid seccomp profile: both 'name' and 'names' are specified for one entry"
    );
    assert_eq!(
        error(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"new"}}]}"#
        ),
        r#"invalid seccomp profile: minKernel "new" is not a kernel version"#
    );
    assert_eq!(
        error(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#),
        "seccomp profile not supported: the action SCMP_ACT_NOTIFY (no seccomp agent)"
    );
    // The public entry point reports the same.
    let e = SeccompProfile::from_json(b"\"x\"").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid seccomp profile: invalid type: string \"x\", expected struct Profile at line 1 column 3"
    );
}

#[test]
fn helpers() {
    assert_eq!(parse_kernel("6.1.0-27-amd64"), Some((6, 1)));
    assert_eq!(parse_kernel("4.8"), Some((4, 8)));
    assert_eq!(parse_kernel("5"), Some((5, 0)));
    assert_eq!(parse_kernel("x"), None);
    let caps = crate::init::DEFAULT_CAPS.bits();
    assert!(has_cap(caps, "CAP_CHOWN"));
    assert!(has_cap(caps, "CAP_AUDIT_WRITE"));
    assert!(!has_cap(caps, "CAP_SYS_ADMIN"));
    assert!(!has_cap(caps, "CAP_NO_SUCH"));
    assert!(has_cap(1 << 40, "CAP_CHECKPOINT_RESTORE"));
}

#[test]
fn native_default_profile() {
    let p = SeccompProfile::docker_default().unwrap();
    assert_eq!(p.filter_count(), 2);
    // The shared RETs apply to Docker's profile: x86_64 and i386 in about 300 instructions.
    assert!(p.filters[0].len() < 400, "{}", p.filters[0].len());
    // Cached: the same compiled program.
    assert!(Arc::ptr_eq(&p, &SeccompProfile::docker_default().unwrap()));
    // Packing round-trips the instructions.
    let packed = p.packed();
    assert_eq!(packed[0].len(), p.filters[0].len());
    let i = &p.filters[0][1];
    let w = packed[0][1];
    assert_eq!(
        ((w >> 48) as u16, (w >> 40) as u8, (w >> 32) as u8, w as u32),
        (i.code, i.jt, i.jf, i.k)
    );
    // The calls the tests rely on exist in the native table.
    for name in ["clone", "clone3", "unshare", "mount", "fchmodat2"] {
        assert!(
            (Target::native().unwrap().abis[0].number)(name).is_some(),
            "{name}"
        );
    }
}

/// seccompiler's own filter (a linear scan of the syscall numbers): the reference, for one
/// 64-bit ABI.
fn linear(
    abis: &[(u32, Rules)],
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SeccompError> {
    let [(audit, rules)] = abis else {
        panic!("one ABI only")
    };
    let arch = match *audit {
        AUDIT_ARCH_X86_64 => seccompiler::TargetArch::x86_64,
        0xc000_00b7 => seccompiler::TargetArch::aarch64,
        0xc000_00f3 => seccompiler::TargetArch::riscv64,
        other => panic!("no reference for {other:#x}"),
    };
    let rules = rules
        .clone()
        .into_iter()
        .map(|(nr, r)| (nr, r.unwrap_or_default()))
        .collect();
    seccompiler::SeccompFilter::new(rules, mismatch, matched, arch)
        .and_then(BpfProgram::try_from)
        .map_err(|e| SeccompError::Unsupported(e.to_string()))
}

/// The search tree decides every call exactly as seccompiler's linear filter does: Docker's
/// profile with the native syscall table (with and without CAP_SYS_ADMIN) and the test
/// profiles, over every syscall number up to 700, a few beyond, and interesting arguments.
#[test]
fn same_decisions_as_a_linear_filter() {
    let native = || Target {
        abis: Target::native().unwrap().abis[..1].to_vec(),
        ..Target::native().unwrap()
    };
    let targets = [
        native(),
        Target {
            caps: u64::MAX,
            ..native()
        },
    ];
    let profiles = [
        DOCKER_DEFAULT_JSON,
        r#"{"defaultAction":"SCMP_ACT_KILL_PROCESS","syscalls":[
            {"names":["read","write","close"],"action":"SCMP_ACT_ALLOW"},
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":5},
            {"names":["write"],"action":"SCMP_ACT_LOG","args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
            {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":255,"valueTwo":2,"op":"SCMP_CMP_MASKED_EQ"},{"index":1,"value":2,"op":"SCMP_CMP_LE"}]}]}"#,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_TRAP"}]}"#,
    ];
    let values = [
        0u64,
        1,
        2,
        3,
        8,
        17,
        38,
        39,
        40,
        41,
        0x0002_0000,
        0x1000_0000,
        0x7e02_0000,
        0x0120_0011,
        0xffff_ffff,
        1 << 32,
        u64::MAX,
    ];
    let mut numbers: Vec<i32> = (0..700).collect();
    numbers.extend([0x4000_0000, 0x4000_0001, i32::MAX, -1]);
    for t in &targets {
        for json in profiles {
            let p: Profile = serde_json::from_str(json).unwrap();
            let ours = compile(&p, t).unwrap();
            let reference = compile_with(&p, t, linear).unwrap();
            for &nr in &numbers {
                for &a0 in &values {
                    for &a1 in &values[..6] {
                        let args = [a0, a1, 0, 0, 0, 0];
                        assert_eq!(
                            run(&ours, t.abis[0].audit, nr, args),
                            run(&reference, t.abis[0].audit, nr, args),
                            "nr {nr}, args {args:?}, profile {json:.40}"
                        );
                    }
                }
            }
            assert_eq!(run(&ours, 0x4000_0003, 0, NO), RET_KILL_PROCESS);
        }
    }
    // And far smaller than the reference for Docker's profile.
    let p: Profile = serde_json::from_str(DOCKER_DEFAULT_JSON).unwrap();
    let (ours, reference) = (
        compile(&p, &targets[0]).unwrap(),
        compile_with(&p, &targets[0], linear).unwrap(),
    );
    assert!(
        ours[0].len() * 4 < reference[0].len(),
        "{} vs {}",
        ours[0].len(),
        reference[0].len()
    );
}

/// A jump over a left half longer than 255 instructions needs the JA form.
#[test]
fn long_jumps() {
    // 300 syscalls, each with an argument rule, alternate numbers: a big tree.
    let mut rules = Rules::new();
    for nr in 0..300i64 {
        let c =
            SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, nr as u64).unwrap();
        rules.insert(nr * 2, Some(vec![SeccompRule::new(vec![c]).unwrap()]));
    }
    // Too far for the shared RETs: the inline form is used.
    assert!(shared_exits(&ranges(&rules).unwrap(), RET_ALLOW, EPERM).is_none());
    let f = filter(
        &[(AUDIT_ARCH_X86_64, rules)],
        SeccompAction::Errno(1),
        SeccompAction::Allow,
    )
    .unwrap();
    assert!(f.len() > 600);
    assert!(f.iter().any(|i| i.code == BPF_JMP_JA && i.k > 255));
    for nr in 0..600i32 {
        let want_allow = if nr % 2 == 0 { nr as u64 / 2 } else { u64::MAX };
        assert_eq!(
            run(
                std::slice::from_ref(&f),
                AUDIT_ARCH_X86_64,
                nr,
                [want_allow, 0, 0, 0, 0, 0]
            ),
            if nr % 2 == 0 { RET_ALLOW } else { EPERM },
            "{nr}"
        );
        assert_eq!(
            run(
                std::slice::from_ref(&f),
                AUDIT_ARCH_X86_64,
                nr,
                [7777, 0, 0, 0, 0, 0]
            ),
            EPERM,
            "{nr}"
        );
    }
}

/// The 32-bit ABI (i386 on x86_64) gets the same entries with its own numbers, its arguments
/// compared on their low 32 bits only (as libseccomp; the kernel ignores the high halves).
#[cfg(target_arch = "x86_64")]
#[test]
fn i386_calls() {
    const I386: u32 = 0x4000_0003;
    let t = Target::native().unwrap();
    assert_eq!(t.abis.len(), 2);
    assert_eq!(t.abis[1].audit, I386);
    let f = compile(&serde_json::from_str(DOCKER_DEFAULT_JSON).unwrap(), &t).unwrap();
    assert_eq!(f.len(), 2);
    let i386 = |nr: i32, a0: u64| run(&f, I386, nr, [a0, 0, 0, 0, 0, 0]);
    assert_eq!(i386(20, 0), RET_ALLOW); // getpid
    assert_eq!(i386(310, CLONE_NEWUSER), EPERM); // unshare
    assert_eq!(i386(21, 0), EPERM); // mount
    assert_eq!(i386(120, FORK_FLAGS), RET_ALLOW); // clone
    assert_eq!(i386(120, FORK_FLAGS | CLONE_NEWUSER), EPERM);
    assert_eq!(i386(435, 0), ENOSYS); // clone3
    assert_eq!(i386(359, 2), RET_ALLOW); // socket(AF_INET)
    assert_eq!(i386(359, 40), EPERM); // socket(AF_VSOCK)
                                      // High halves do not count: no way around a rule by setting them.
    assert_eq!(i386(359, 40 | 1 << 32), EPERM);
    assert_eq!(i386(136, 0xffff_ffff | 1 << 32), RET_ALLOW); // personality
                                                             // x86_64 numbers still decide x86_64 calls (mount is 165 there, getpid 39).
    assert_eq!(run(&f, AUDIT_ARCH_X86_64, 39, NO), RET_ALLOW);
    assert_eq!(run(&f, AUDIT_ARCH_X86_64, 165, NO), EPERM);
    assert_eq!(run(&f, AUDIT_ARCH_X86_64, 21, NO), RET_ALLOW); // access
                                                               // Any other architecture is killed.
    assert_eq!(run(&f, 0xc000_00b7, 39, NO), RET_KILL_PROCESS);
}
