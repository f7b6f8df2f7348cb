//! The state directory: PKI, kubeconfig, logs, PIDs and addresses of one
//! running control plane, described by `state.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::{self, ClusterState};
use crate::fakes::{self, FakesAddrs};
use crate::pki::PkiFiles;
use crate::proc::{self, Lifetime, Proc};
use crate::tools::Tools;
use crate::Error;

pub const STATE_FILE: &str = "state.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnvState {
    pub dir: PathBuf,
    pub cluster: ClusterState,
    pub fakes: FakesAddrs,
    /// The process serving the fakes (the `serve` child of `up`, or the test binary).
    pub fakes_pid: u32,
    /// Seconds from start to everything ready.
    pub startup_secs: f64,
}

impl EnvState {
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Other(format!("{}: {e}", path.display())))
    }

    pub fn save(&self) -> Result<(), Error> {
        let path = self.dir.join(STATE_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    }

    pub fn pki(&self) -> PkiFiles {
        PkiFiles::in_dir(&self.dir)
    }

    /// Every process to stop, fakes first.
    pub fn procs(&self) -> Vec<Proc> {
        let mut v = self.cluster.procs.clone();
        if self.fakes_pid != std::process::id() {
            v.push(Proc { name: "fakes".into(), pid: self.fakes_pid, log: self.dir.join("logs/fakes.log") });
        }
        v
    }

    /// Stops everything by PID (newest first) and removes etcd's data; logs stay.
    pub fn stop(&self) {
        cluster::stop(&self.procs());
        let _ = std::fs::remove_dir_all(self.dir.join("etcd"));
    }
}

/// Generates PKI and starts the cluster in `dir`, then the fakes: on the
/// current runtime when `fakes_exe` is None, else as a `serve` child of it.
pub async fn start(dir: &Path, lifetime: Lifetime, fakes_exe: Option<&Path>) -> Result<EnvState, Error> {
    let t0 = std::time::Instant::now();
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| Error::io(dir, e))?;
    let tools = Tools::from_cache()?;
    let pki = PkiFiles::in_dir(dir);
    pki.write_all()?;
    let cluster = cluster::start(dir, &tools, &pki, lifetime).await?;
    let (fakes, fakes_pid) = match fakes_exe {
        None => (fakes::start(&pki).await.inspect_err(|_| cluster::stop(&cluster.procs))?, std::process::id()),
        Some(exe) => match serve_child(dir, exe, lifetime).await {
            Ok(v) => v,
            Err(e) => {
                cluster::stop(&cluster.procs);
                return Err(e);
            }
        },
    };
    let state = EnvState { dir: dir.to_path_buf(), cluster, fakes, fakes_pid, startup_secs: t0.elapsed().as_secs_f64() };
    state.save()?;
    Ok(state)
}

pub const FAKES_FILE: &str = "fakes.json";

async fn serve_child(dir: &Path, exe: &Path, lifetime: Lifetime) -> Result<(FakesAddrs, u32), Error> {
    let file = dir.join(FAKES_FILE);
    let _ = std::fs::remove_file(&file);
    let p = proc::spawn("fakes", exe, &["serve".into(), "--state".into(), dir.display().to_string()], &dir.join("logs"), lifetime)?;
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Ok(addrs) = serde_json::from_str(&text)
        {
            return Ok((addrs, p.pid));
        }
        if !proc::alive(p.pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proc::stop(p.pid, Duration::from_secs(2));
    Err(Error::Start { what: "fakes".into(), detail: proc::tail(&p.log, 20) })
}

/// Removes etcd data of runs whose owner is gone, and whole runs older than a day.
pub fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for e in entries.flatten() {
        let dir = e.path();
        let Some(pid) = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("run-")).and_then(|p| p.parse().ok()) else {
            continue;
        };
        if proc::alive(pid) && pid != std::process::id() {
            continue;
        }
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a > Duration::from_secs(86_400));
        if old || pid == std::process::id() {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            let _ = std::fs::remove_dir_all(dir.join("etcd"));
        }
    }
}
