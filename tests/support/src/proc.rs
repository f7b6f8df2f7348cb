//! Child processes of the control plane: spawned with their output in log
//! files, recorded by PID, stopped by PID.
//!
//! Lifetime: a test binary that crashes, panics or simply exits must not leave
//! etcd or the apiserver behind. Statics are never dropped at exit, so a
//! Drop-based cleanup is not enough; instead each child asks the kernel for
//! SIGKILL when its parent thread dies (`PR_SET_PDEATHSIG`). The signal is tied
//! to the *thread* that forked, so callers spawn from a thread that lives as
//! long as the process (see `env.rs`). The `up` command (demo) wants the
//! opposite: children that outlive the CLI, in their own session.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// How spawned children relate to the spawning process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// Killed by the kernel when the spawning thread dies (tests).
    TiedToParent,
    /// Own session, survives the spawner; stopped by `down` (demo, `make test` reuse).
    Detached,
}

/// A started child: name, PID and where its output goes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Proc {
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
}

pub fn spawn(name: &str, program: &Path, args: &[String], log_dir: &Path, lifetime: Lifetime) -> Result<Proc, Error> {
    let log = log_dir.join(format!("{name}.log"));
    let out = File::create(&log).map_err(|e| Error::io(&log, e))?;
    let err = out.try_clone().map_err(|e| Error::io(&log, e))?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    match lifetime {
        Lifetime::TiedToParent => tie_to_parent(&mut cmd),
        Lifetime::Detached => {
            cmd.process_group(0);
        }
    }
    let child = cmd.spawn().map_err(|e| Error::Spawn(program.display().to_string(), e))?;
    Ok(Proc { name: name.to_string(), pid: child.id(), log })
}

#[allow(unsafe_code)]
fn tie_to_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls the
    // async-signal-safe prctl(2) and getppid(2).
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("parent exited before exec"));
            }
            Ok(())
        });
    }
}

/// Whether a process with this PID exists (and is not a zombie we could reap).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; Z = zombie, X = dead.
        Ok(stat) => stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()).is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// SIGTERM, then SIGKILL after `grace`. Only the given PID is signalled.
pub fn stop(pid: u32, grace: Duration) {
    if !alive(pid) {
        return;
    }
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(pid, libc::SIGKILL);
}

#[allow(unsafe_code)]
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// The last `lines` lines of a log, for error messages.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Picks a free loopback port. The port is released before the caller binds
/// it, so a tiny race remains; callers retry a failed start.
pub fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io(Path::new("127.0.0.1:0"), e))?;
    Ok(l.local_addr().map_err(|e| Error::io(Path::new("127.0.0.1:0"), e))?.port())
}
