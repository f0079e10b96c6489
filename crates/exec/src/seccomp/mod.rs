//! Seccomp: Docker's profile format compiled to BPF, and installing it in the container's init.
//!
//! A profile is Docker's JSON (`defaultAction`, `defaultErrnoRet`, `syscalls[]` with `names`,
//! `action`, `errnoRet`, `args` and `includes`/`excludes`). [`SeccompProfile::docker_default`]
//! is Docker's own default profile (`default.json` beside this file, see `NOTICE.md`), compiled
//! once per process.
//!
//! # Docker's rules, as applied here
//!
//! * An entry applies when its `includes` hold and its `excludes` do not, against the native
//!   architecture (Go's name: `amd64`, `arm64`, `riscv64`), the container's capability
//!   *bounding* set (strata's is always Docker's default set, so `CAP_SYS_ADMIN` entries never
//!   apply and the `clone` namespace-flag rule and `clone3` → `ENOSYS` do) and the running
//!   kernel's version (`minKernel`): all `includes.caps` must be in the set, any
//!   `excludes.caps` in the set drops the entry.
//! * The `args` of one entry are ANDed, the entries for one syscall ORed; comparisons are on
//!   the full 64-bit argument (on the low 32 bits for a 32-bit ABI), as libseccomp does.
//!   `SCMP_CMP_MASKED_EQ` is `arg & value == valueTwo`.
//! * A syscall name an ABI does not have is skipped for that ABI, as libseccomp does.
//! * An entry whose action is the default action changes nothing and is skipped.
//!
//! # One filter per action
//!
//! A filter (see `filter`) has one match action and one mismatch action, as `seccompiler`'s
//! have. The kernel runs every installed filter and keeps the result of highest precedence
//! (KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > TRACE > LOG > ALLOW); among equal actions the
//! most recently installed filter's data wins. So a profile becomes, in installation order:
//!
//! 1. the *base* filter: `ALLOW` for every (syscall, args) that any entry matches, whatever its
//!    action, and the default action for everything else (left out when the default is ALLOW);
//! 2. one filter per other action `X` (sorted): `X` for the entries with action `X`, `ALLOW`
//!    for everything else.
//!
//! A call matching an `X` entry gets ALLOW from the base, X from its filter, ALLOW from the
//! others: X. A call matching no entry gets the default from the base and ALLOW from the rest.
//! A call matching only ALLOW entries gets ALLOW everywhere. (Where entries with different
//! actions overlap, the action of highest precedence wins; Docker's default profile has no
//! such overlap for any capability set.) Docker's default profile is two filters: the
//! allow-list, and `clone3` → `ERRNO(ENOSYS)` (so glibc falls back to `clone`, whose flags the
//! base filter checks).
//!
//! # The program
//!
//! Each filter checks the architecture (one search per ABI), then finds the syscall number by
//! binary search over ranges (consecutive numbers with the same unconditional outcome are one
//! range), then runs the argument checks of that syscall, which `seccompiler` compiles
//! (`SeccompRule`); ranges that only return jump to two `RET`s shared at the end. Docker's
//! default profile for x86_64 and i386 is about 310 instructions, which the kernel installs in
//! about 0.15 ms here; `seccompiler`'s own filter (a linear scan, x86_64 alone) is 1,600
//! instructions and took 1.2 ms, because the kernel's cost grows with the program (it also
//! evaluates a new filter for every syscall number to fill its action cache). A unit test
//! checks that both make the same decisions.
//!
//! # Architectures
//!
//! As with Docker's `archMap`, a filter covers the native ABI and its 32-bit one (i386 on
//! x86_64, arm on aarch64): each has its own syscall numbers (the `syscalls` crate's tables)
//! and the same entries; a 32-bit call's arguments are compared on their low 32 bits, as
//! libseccomp does, since the kernel ignores the high halves. Any other architecture is
//! killed. x32 calls (x86_64 numbers with bit 30 set) match no rule and get the default
//! action, where Docker allows them (kernels rarely enable x32).
//!
//! # Limits
//!
//! * `SCMP_ACT_NOTIFY` (a user-space supervisor) is not supported; `flags`, `listenerPath`,
//!   `architectures` and `archMap` are ignored (the ABIs are this machine's, as above).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule,
};
use serde::Deserialize;

/// Docker's default profile, as published by moby (see `NOTICE.md`).
pub const DOCKER_DEFAULT_JSON: &str = include_str!("default.json");

/// Which seccomp filter the process gets.
#[derive(Debug, Clone, Default)]
pub enum Seccomp {
    /// Docker's default profile (the default for every RUN and `strata run`).
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A compiled profile of one's own (`--security-opt seccomp=PROFILE.json`).
    Profile(Arc<SeccompProfile>),
}

/// Why a profile cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SeccompError {
    /// Not valid JSON, or not Docker's profile format.
    #[error("invalid seccomp profile: {0}")]
    Json(String),
    /// A value the format does not allow (an unknown action or operator, ...).
    #[error("invalid seccomp profile: {0}")]
    Invalid(String),
    /// Valid, but something strata does not do (a notify action, an architecture).
    #[error("seccomp profile not supported: {0}")]
    Unsupported(String),
}

/// A profile compiled for this machine and Docker's default capability set: the BPF filters,
/// in installation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompProfile {
    filters: Vec<BpfProgram>,
}

impl SeccompProfile {
    /// Parse and compile a profile in Docker's JSON format.
    pub fn from_json(json: &[u8]) -> Result<Self, SeccompError> {
        let profile: Profile =
            serde_json::from_slice(json).map_err(|e| SeccompError::Json(e.to_string()))?;
        Ok(SeccompProfile {
            filters: compile(&profile, &Target::native()?)?,
        })
    }

    /// Docker's default profile, compiled on first use and shared afterwards.
    pub fn docker_default() -> Result<Arc<Self>, SeccompError> {
        static DEFAULT: OnceLock<Result<Arc<SeccompProfile>, SeccompError>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| SeccompProfile::from_json(DOCKER_DEFAULT_JSON.as_bytes()).map(Arc::new))
            .clone()
    }

    /// How many BPF filters the profile installs.
    pub fn filter_count(&self) -> usize {
        self.filters.len()
    }

    /// The filters as packed instructions (`code << 48 | jt << 40 | jf << 32 | k`), for the
    /// init's spec.
    pub(crate) fn packed(&self) -> Vec<Vec<u64>> {
        self.filters
            .iter()
            .map(|f| {
                f.iter()
                    .map(|i| {
                        (u64::from(i.code) << 48)
                            | (u64::from(i.jt) << 40)
                            | (u64::from(i.jf) << 32)
                            | u64::from(i.k)
                    })
                    .collect()
            })
            .collect()
    }
}

impl Seccomp {
    /// The packed filters to install (none when unconfined).
    pub(crate) fn packed(&self) -> Result<Vec<Vec<u64>>, SeccompError> {
        Ok(match self {
            Seccomp::Default => SeccompProfile::docker_default()?.packed(),
            Seccomp::Unconfined => Vec::new(),
            Seccomp::Profile(p) => p.packed(),
        })
    }
}

/// Install packed filters (from [`SeccompProfile::packed`]) in order, on the calling thread.
///
/// No `PR_SET_NO_NEW_PRIVS`: the caller is root with `CAP_SYS_ADMIN` (the init, before it
/// drops capabilities), which the kernel accepts instead, as runc does when no_new_privs is
/// off. So set-uid binaries keep working in the container.
pub(crate) fn install(filters: &[Vec<u64>]) -> std::io::Result<()> {
    for f in filters {
        let insns: Vec<libc::sock_filter> = f
            .iter()
            .map(|&p| libc::sock_filter {
                code: (p >> 48) as u16,
                jt: (p >> 40) as u8,
                jf: (p >> 32) as u8,
                k: p as u32,
            })
            .collect();
        let len = u16::try_from(insns.len())
            .map_err(|_| std::io::Error::other("seccomp filter too long"))?;
        let prog = libc::sock_fprog {
            len,
            filter: insns.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points to `len` valid instructions that outlive the call; the kernel
        // copies the program and keeps no reference to our memory.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0 as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

// ---- Docker's JSON format -------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[serde(default)]
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Vec<Syscall>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    name: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Arg>,
    includes: Option<Conditions>,
    excludes: Option<Conditions>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u8,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conditions {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

// ---- compiling ------------------------------------------------------------------------

/// What an entry's conditions are checked against, and how names become numbers.
struct Target {
    /// The ABIs a process may call the kernel with, native first (then the 32-bit one of
    /// Docker's `archMap`: i386 on x86_64, arm on aarch64).
    abis: Vec<Abi>,
    /// Go's name of the architecture, as `includes.arches` spells it.
    arch_name: &'static str,
    /// The capability bounding set.
    caps: u64,
    /// The running kernel's (major, minor).
    kernel: (u32, u32),
}

/// One system-call ABI: its `AUDIT_ARCH_*` and syscall table.
#[derive(Clone, Copy)]
struct Abi {
    audit: u32,
    number: fn(&str) -> Option<i64>,
    /// Arguments are 32 bits wide: only their low halves are compared, as libseccomp does
    /// (the kernel ignores the high halves of a 32-bit call's registers).
    narrow: bool,
}

/// `AUDIT_ARCH_*` flags (`linux/audit.h`): 64-bit, little-endian.
const AUDIT_64: u32 = 0x8000_0000;
const AUDIT_LE: u32 = 0x4000_0000;

/// A syscall table of the `syscalls` crate as a function.
macro_rules! table {
    ($arch:ident) => {
        |name: &str| {
            syscalls::$arch::Sysno::from_str(name)
                .ok()
                .map(|s| i64::from(s.id()))
        }
    };
}

/// The ABIs of this machine (native first) and Go's name of its architecture.
#[cfg(target_arch = "x86_64")]
fn native_abis() -> Option<(Vec<Abi>, &'static str)> {
    Some((
        vec![
            Abi {
                audit: 62 | AUDIT_64 | AUDIT_LE, // x86_64
                number: table!(x86_64),
                narrow: false,
            },
            Abi {
                audit: 3 | AUDIT_LE, // i386
                number: table!(x86),
                narrow: true,
            },
        ],
        "amd64",
    ))
}

#[cfg(target_arch = "aarch64")]
fn native_abis() -> Option<(Vec<Abi>, &'static str)> {
    Some((
        vec![
            Abi {
                audit: 183 | AUDIT_64 | AUDIT_LE, // aarch64
                number: table!(aarch64),
                narrow: false,
            },
            Abi {
                audit: 40 | AUDIT_LE, // arm
                number: table!(arm),
                narrow: true,
            },
        ],
        "arm64",
    ))
}

#[cfg(target_arch = "riscv64")]
fn native_abis() -> Option<(Vec<Abi>, &'static str)> {
    Some((
        vec![Abi {
            audit: 243 | AUDIT_64 | AUDIT_LE,
            number: table!(riscv64),
            narrow: false,
        }],
        "riscv64",
    ))
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
fn native_abis() -> Option<(Vec<Abi>, &'static str)> {
    None
}

impl Target {
    fn native() -> Result<Self, SeccompError> {
        let Some((abis, arch_name)) = native_abis() else {
            return Err(SeccompError::Unsupported(format!(
                "architecture {}",
                std::env::consts::ARCH
            )));
        };
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        Ok(Target {
            abis,
            arch_name,
            caps: crate::init::DEFAULT_CAPS.bits(),
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
        })
    }
}

/// `"5.15.0-91-generic"` → (5, 15).
fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// Capability names in bit order (`capability.h`).
const CAP_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Whether `name` (`CAP_SYS_ADMIN`) is in `caps`; an unknown name is in no set.
fn has_cap(caps: u64, name: &str) -> bool {
    let bare = name.strip_prefix("CAP_").unwrap_or(name);
    CAP_NAMES
        .iter()
        .position(|n| *n == bare)
        .is_some_and(|bit| caps & (1u64 << bit) != 0)
}

fn min_kernel(v: &str) -> Result<(u32, u32), SeccompError> {
    parse_kernel(v)
        .filter(|_| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .ok_or_else(|| SeccompError::Invalid(format!("minKernel {v:?} is not a kernel version")))
}

/// Docker's `includes`/`excludes` test (moby's `setupSeccomp`).
fn applies(s: &Syscall, t: &Target) -> Result<bool, SeccompError> {
    if let Some(ex) = &s.excludes {
        if ex.arches.iter().any(|a| a == t.arch_name) || ex.caps.iter().any(|c| has_cap(t.caps, c))
        {
            return Ok(false);
        }
        if let Some(k) = &ex.min_kernel {
            if t.kernel >= min_kernel(k)? {
                return Ok(false);
            }
        }
    }
    if let Some(inc) = &s.includes {
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == t.arch_name) {
            return Ok(false);
        }
        if !inc.caps.iter().all(|c| has_cap(t.caps, c)) {
            return Ok(false);
        }
        if let Some(k) = &inc.min_kernel {
            if t.kernel < min_kernel(k)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn action(name: &str, errno: Option<u32>) -> Result<SeccompAction, SeccompError> {
    // runc's rule: ERRNO and TRACE without a value return EPERM.
    let data = errno.unwrap_or(libc::EPERM as u32);
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(data),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(data),
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_NOTIFY" => {
            return Err(SeccompError::Unsupported(
                "the action SCMP_ACT_NOTIFY (no seccomp agent)".into(),
            ))
        }
        "" => return Err(SeccompError::Invalid("defaultAction is missing".into())),
        other => return Err(SeccompError::Invalid(format!("unknown action {other:?}"))),
    })
}

fn condition(a: &Arg, len: SeccompCmpArgLen) -> Result<SeccompCondition, SeccompError> {
    let (op, value) = match a.op.as_str() {
        "SCMP_CMP_NE" => (SeccompCmpOp::Ne, a.value),
        "SCMP_CMP_LT" => (SeccompCmpOp::Lt, a.value),
        "SCMP_CMP_LE" => (SeccompCmpOp::Le, a.value),
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, a.value),
        "SCMP_CMP_GE" => (SeccompCmpOp::Ge, a.value),
        "SCMP_CMP_GT" => (SeccompCmpOp::Gt, a.value),
        "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(a.value), a.value_two),
        other => return Err(SeccompError::Invalid(format!("unknown operator {other:?}"))),
    };
    SeccompCondition::new(a.index, len, op, value).map_err(|_| {
        SeccompError::Invalid(format!("argument index {} out of range (0 to 5)", a.index))
    })
}

/// Rules per syscall number; `None` = matched whatever the arguments.
type Rules = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn add(rules: &mut Rules, nr: i64, rule: &Option<SeccompRule>) {
    let slot = rules.entry(nr).or_insert_with(|| Some(Vec::new()));
    match (slot.as_mut(), rule) {
        (Some(v), Some(r)) => v.push(r.clone()),
        (_, None) => *slot = None,
        (None, Some(_)) => {}
    }
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
/// `offsetof(struct seccomp_data, nr)` and `arch`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// The kernel's limit on a classic BPF program (`BPF_MAXINSNS`).
const MAX_INSNS: usize = 4096;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> seccompiler::sock_filter {
    seccompiler::sock_filter { code, jt, jf, k }
}

/// What one range of syscall numbers gets.
#[derive(Clone)]
enum Leaf {
    Mismatch,
    Match,
    /// One syscall whose entries check arguments (ORed).
    Rules(Vec<SeccompRule>),
}

/// One filter: the architecture check, then a binary search over ranges of syscall numbers.
///
/// `seccompiler`'s `SeccompFilter` tests the syscall number against each listed syscall in
/// turn, which for Docker's ~370 calls is a 1,600-instruction program that took the kernel
/// 1.2 ms to install here (it evaluates the filter for every syscall number to fill its
/// action cache) and lets a late call run hundreds of instructions; it also knows one
/// architecture only. So the dispatch is ours:
/// consecutive unconditionally matched numbers merge into one range, and ranges are found by
/// `JGE` comparisons (about 9 for Docker's profile); the argument checks of a syscall are
/// seccompiler's (`SeccompRule` compiled to BPF, 64-bit comparisons included).
fn filter(
    abis: &[(u32, Rules)],
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SeccompError> {
    let (on_match, on_mismatch) = (u32::from(matched), u32::from(mismatch));
    let mut trees = Vec::with_capacity(abis.len());
    for (_, rules) in abis {
        let ranges = ranges(rules)?;
        let mut tree = vec![insn(BPF_LD_W_ABS, 0, 0, DATA_NR)];
        tree.extend(
            shared_exits(&ranges, on_match, on_mismatch)
                .unwrap_or_else(|| search(&ranges, on_match, on_mismatch)),
        );
        trees.push(tree);
    }
    // The architecture: `JEQ` + `JA` to its tree per ABI, then KILL_PROCESS for any other.
    let n = abis.len();
    let mut prog = vec![insn(BPF_LD_W_ABS, 0, 0, DATA_ARCH)];
    let mut before = 0;
    for (i, (audit, _)) in abis.iter().enumerate() {
        prog.push(insn(BPF_JMP_JEQ_K, 0, 1, *audit));
        prog.push(insn(
            BPF_JMP_JA,
            0,
            0,
            (2 * (n - i - 1) + 1 + before) as u32,
        ));
        before += trees[i].len();
    }
    prog.push(insn(BPF_RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS));
    prog.extend(trees.into_iter().flatten());
    if prog.len() > MAX_INSNS {
        return Err(SeccompError::Unsupported(format!(
            "the profile needs {} BPF instructions, more than the kernel's {MAX_INSNS}",
            prog.len()
        )));
    }
    Ok(prog)
}

/// Ranges `[start, next start)` of syscall numbers covering every `u32`, each with its leaf.
fn ranges(rules: &Rules) -> Result<Vec<(u32, Leaf)>, SeccompError> {
    let mut ranges: Vec<(u32, Leaf)> = vec![(0, Leaf::Mismatch)];
    for (&nr, r) in rules {
        let nr =
            u32::try_from(nr).map_err(|_| SeccompError::Invalid(format!("syscall number {nr}")))?;
        let leaf = match r {
            None => Leaf::Match,
            Some(v) => Leaf::Rules(v.clone()),
        };
        let last = ranges.last_mut().expect("never empty");
        if last.0 == nr {
            last.1 = leaf; // the first range starts at 0
        } else {
            ranges.push((nr, leaf));
        }
        if let Some(next) = nr.checked_add(1) {
            ranges.push((next, Leaf::Mismatch));
        }
    }
    // Merge neighbours that end the same way (a Rules leaf is never merged).
    let mut merged: Vec<(u32, Leaf)> = Vec::with_capacity(ranges.len());
    for (start, leaf) in ranges {
        match (merged.last().map(|l| &l.1), &leaf) {
            (Some(Leaf::Match), Leaf::Match) | (Some(Leaf::Mismatch), Leaf::Mismatch) => {}
            _ => merged.push((start, leaf)),
        }
    }
    Ok(merged)
}

/// The code for `ranges` (sorted, the first one's start is the lower bound), with the
/// syscall number in the accumulator. Every path ends in a `RET`.
fn search(ranges: &[(u32, Leaf)], on_match: u32, on_mismatch: u32) -> BpfProgram {
    if let [(_, leaf)] = ranges {
        return match leaf {
            Leaf::Match => vec![insn(BPF_RET_K, 0, 0, on_match)],
            Leaf::Mismatch => vec![insn(BPF_RET_K, 0, 0, on_mismatch)],
            Leaf::Rules(rules) => {
                // Each rule falls through to its RET when it matches, and jumps past that RET
                // when it does not.
                let mut code = Vec::new();
                for r in rules {
                    code.extend(BpfProgram::from(r.clone()));
                    code.push(insn(BPF_RET_K, 0, 0, on_match));
                }
                code.push(insn(BPF_RET_K, 0, 0, on_mismatch));
                code
            }
        };
    }
    let mid = ranges.len() / 2;
    let left = search(&ranges[..mid], on_match, on_mismatch);
    let right = search(&ranges[mid..], on_match, on_mismatch);
    let mut code = Vec::with_capacity(left.len() + right.len() + 2);
    // nr >= pivot: the right half, after the left one.
    match u8::try_from(left.len()) {
        Ok(skip) => code.push(insn(BPF_JMP_JGE_K, skip, 0, ranges[mid].0)),
        Err(_) => {
            code.push(insn(BPF_JMP_JGE_K, 0, 1, ranges[mid].0));
            code.push(insn(BPF_JMP_JA, 0, 0, left.len() as u32));
        }
    }
    code.extend(left);
    code.extend(right);
    code
}

/// A jump to one of the two `RET`s at the end of a tree.
struct Fix {
    /// Index of the `JGE`.
    at: usize,
    /// Patch `jt` (else `jf`).
    jt: bool,
    /// To the match `RET` (else the mismatch one).
    to_match: bool,
}

/// As [`search`], but a range that only returns becomes a jump to one of two shared `RET`s at
/// the end, which saves one instruction per such range (about a third of the program; the
/// kernel's install time grows with the size). `None` when a jump would be longer than a
/// conditional jump's 255.
fn shared_exits(ranges: &[(u32, Leaf)], on_match: u32, on_mismatch: u32) -> Option<BpfProgram> {
    if ranges.len() == 1 {
        return None; // nothing to share
    }
    let (mut code, fixes) = search_fix(ranges, on_match, on_mismatch);
    let (to_match, to_mismatch) = (code.len(), code.len() + 1);
    code.push(insn(BPF_RET_K, 0, 0, on_match));
    code.push(insn(BPF_RET_K, 0, 0, on_mismatch));
    for f in fixes {
        let target = if f.to_match { to_match } else { to_mismatch };
        let off = u8::try_from(target - f.at - 1).ok()?;
        if f.jt {
            code[f.at].jt = off;
        } else {
            code[f.at].jf = off;
        }
    }
    Some(code)
}

fn search_fix(ranges: &[(u32, Leaf)], on_match: u32, on_mismatch: u32) -> (BpfProgram, Vec<Fix>) {
    let exit = |r: &[(u32, Leaf)]| match r {
        [(_, Leaf::Match)] => Some(true),
        [(_, Leaf::Mismatch)] => Some(false),
        _ => None,
    };
    if let [(_, Leaf::Rules(_))] = ranges {
        return (search(ranges, on_match, on_mismatch), Vec::new());
    }
    let mid = ranges.len() / 2;
    let (l, r) = (&ranges[..mid], &ranges[mid..]);
    let pivot = ranges[mid].0;
    let mut code = vec![insn(BPF_JMP_JGE_K, 0, 0, pivot)];
    let mut fixes = Vec::new();
    let append = |code: &mut BpfProgram, fixes: &mut Vec<Fix>, part: &[(u32, Leaf)]| {
        let (c, f) = search_fix(part, on_match, on_mismatch);
        let base = code.len();
        fixes.extend(f.into_iter().map(|f| Fix {
            at: f.at + base,
            ..f
        }));
        code.extend(c);
    };
    match (exit(l), exit(r)) {
        (Some(lm), Some(rm)) => {
            fixes.push(Fix {
                at: 0,
                jt: true,
                to_match: rm,
            });
            fixes.push(Fix {
                at: 0,
                jt: false,
                to_match: lm,
            });
        }
        (Some(lm), None) => {
            fixes.push(Fix {
                at: 0,
                jt: false,
                to_match: lm,
            });
            append(&mut code, &mut fixes, r);
        }
        (None, Some(rm)) => {
            fixes.push(Fix {
                at: 0,
                jt: true,
                to_match: rm,
            });
            append(&mut code, &mut fixes, l);
        }
        (None, None) => {
            append(&mut code, &mut fixes, l);
            let left_len = code.len() - 1;
            match u8::try_from(left_len) {
                Ok(skip) => code[0].jt = skip,
                Err(_) => {
                    // JGE 0/1 then `JA` over the left half: shift what follows by one.
                    code[0].jf = 1;
                    code.insert(1, insn(BPF_JMP_JA, 0, 0, left_len as u32));
                    for f in fixes.iter_mut() {
                        f.at += 1;
                    }
                }
            }
            append(&mut code, &mut fixes, r);
        }
    }
    (code, fixes)
}

/// Builds one filter from each ABI's rules, the mismatch and the match action.
type FilterFn =
    fn(&[(u32, Rules)], SeccompAction, SeccompAction) -> Result<BpfProgram, SeccompError>;

/// The filters of `p` for `t`, in installation order (see the module's doc).
fn compile(p: &Profile, t: &Target) -> Result<Vec<BpfProgram>, SeccompError> {
    compile_with(p, t, filter)
}

fn compile_with(
    p: &Profile,
    t: &Target,
    filter: FilterFn,
) -> Result<Vec<BpfProgram>, SeccompError> {
    let default = action(&p.default_action, p.default_errno_ret)?;
    let empty =
        || -> Vec<(u32, Rules)> { t.abis.iter().map(|a| (a.audit, Rules::new())).collect() };
    let mut base = empty();
    let mut by_action: BTreeMap<u32, (SeccompAction, Vec<(u32, Rules)>)> = BTreeMap::new();
    for s in &p.syscalls {
        if s.name.is_some() && !s.names.is_empty() {
            return Err(SeccompError::Invalid(
                "both 'name' and 'names' are specified for one entry".into(),
            ));
        }
        // Validate every entry, even those that do not apply here.
        let act = action(&s.action, s.errno_ret)?;
        let rule = |len: SeccompCmpArgLen| -> Result<Option<SeccompRule>, SeccompError> {
            if s.args.is_empty() {
                return Ok(None);
            }
            let conds = s
                .args
                .iter()
                .map(|a| condition(a, len.clone()))
                .collect::<Result<_, _>>()?;
            Ok(Some(
                SeccompRule::new(conds).map_err(|e| SeccompError::Invalid(e.to_string()))?,
            ))
        };
        let (wide, narrow) = (
            rule(SeccompCmpArgLen::Qword)?,
            rule(SeccompCmpArgLen::Dword)?,
        );
        if !applies(s, t)? || act == default {
            continue;
        }
        for (i, abi) in t.abis.iter().enumerate() {
            let rule = if abi.narrow { &narrow } else { &wide };
            for name in s.name.iter().chain(&s.names) {
                let Some(nr) = (abi.number)(name) else {
                    continue; // not a syscall of this ABI
                };
                if default != SeccompAction::Allow {
                    add(&mut base[i].1, nr, rule);
                }
                if act != SeccompAction::Allow {
                    let group = by_action
                        .entry(u32::from(act.clone()))
                        .or_insert_with(|| (act.clone(), empty()));
                    add(&mut group.1[i].1, nr, rule);
                }
            }
        }
    }
    let mut filters = Vec::new();
    if default != SeccompAction::Allow {
        filters.push(filter(&base, default, SeccompAction::Allow)?);
    }
    for (_, (act, rules)) in by_action {
        filters.push(filter(&rules, SeccompAction::Allow, act)?);
    }
    Ok(filters)
}

#[cfg(test)]
mod tests;
