//! The two kernel filters the helper applies last: Landlock (which paths, no TCP, no signals
//! or abstract sockets outside) and seccomp (which system calls).

use std::collections::BTreeMap;
use std::path::PathBuf;

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

/// The newest ABI this build knows; the crate's best-effort mode uses what the kernel has.
const LANDLOCK_ABI: ABI = ABI::V6;

pub(crate) fn apply_landlock(read: &[PathBuf], write: &[PathBuf]) -> Result<String, String> {
    finish_landlock(landlock_ruleset(read, write)?, &[])
}

/// A ruleset with rules for the paths that exist now, not applied yet: a prepared command
/// (`prepared.rs`) adds /workspace and /tmp once they are mounted, since a rule on a mount
/// point does not cover what is mounted on it later.
pub(crate) fn landlock_ruleset(
    read: &[PathBuf],
    write: &[PathBuf],
) -> Result<RulesetCreated, String> {
    let abi = LANDLOCK_ABI;
    let read: Vec<&PathBuf> = read.iter().filter(|p| p.exists()).collect();
    let write: Vec<&PathBuf> = write.iter().filter(|p| p.exists()).collect();
    Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(read, AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(write, AccessFs::from_all(abi))))
        .map_err(|e| format!("landlock: {e}"))
}

/// Adds read-write rules for `write` and restricts this process with the ruleset.
pub(crate) fn finish_landlock(
    ruleset: RulesetCreated,
    write: &[PathBuf],
) -> Result<String, String> {
    let abi = LANDLOCK_ABI;
    let status = ruleset
        .add_rules(path_beneath_rules(write, AccessFs::from_all(abi)))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(format!(
            "fully enforced (ABI {}): files beneath the allowed paths only, no TCP bind or connect, no signals or abstract sockets outside",
            abi as i32
        )),
        RulesetStatus::PartiallyEnforced => Ok(
            "partially enforced (this kernel's Landlock is older than ABI 6: file rules hold, some of TCP and scoping may not)"
                .into(),
        ),
        RulesetStatus::NotEnforced => {
            Err("not enforced: this kernel has no Landlock (or it is disabled at boot)".into())
        }
    }
}

fn arch() -> Result<TargetArch, String> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(TargetArch::x86_64),
        "aarch64" => Ok(TargetArch::aarch64),
        "riscv64" => Ok(TargetArch::riscv64),
        other => Err(format!("seccomp: no filter for the {other} architecture")),
    }
}

/// System calls a command never needs: tracing, mounting, namespaces, kernel keyrings, BPF,
/// modules and io_uring (whose operations bypass seccomp).
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_kexec_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_userfaultfd,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
];

/// The filter, compiled once by the zygote for all its commands.
pub(crate) fn compile_seccomp() -> Result<seccompiler::BpfProgram, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|s| (*s, Vec::new())).collect();
    let family = |f: i32| {
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, f as u64)
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(|e| format!("seccomp: {e}"))
    };
    rules.insert(
        libc::SYS_socket,
        vec![family(libc::AF_INET)?, family(libc::AF_INET6)?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch()?,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    filter.try_into().map_err(|e| format!("seccomp: {e:?}"))
}

/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: without it the kernel also forces Speculative Store Bypass
/// mitigation on the filtered process, which slows the command down and guards only against
/// reading its own memory speculatively (a concern of in-process sandboxes, not of a separate
/// process like this). runc and systemd set it too.
const SPEC_ALLOW: libc::c_ulong = 1 << 2;

pub(crate) fn apply_seccomp(program: &seccompiler::BpfProgram) -> Result<String, String> {
    let prog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: NO_NEW_PRIVS is a flag of this process; the program outlives the call, and the
    // kernel copies it.
    let r = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            SPEC_ALLOW,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(format!("seccomp: {}", std::io::Error::last_os_error()));
    }
    Ok(format!(
        "no IPv4/IPv6 sockets, and {} system calls denied (ptrace, mount, namespaces, keyrings, bpf, io_uring, ...)",
        DENIED.len()
    ))
}
