//! A fresh local control plane per scenario run: new state directory, new etcd data
//! directory, stopped (and its data removed) when dropped.

use std::path::PathBuf;

use anyhow::Context as _;
use lockstep_testenv::{TestEnv, proc::Lifetime, state};

pub struct Plane {
    pub env: TestEnv,
    dir: PathBuf,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Plane {
    /// Starts etcd, kube-apiserver, kube-controller-manager and the fakes on a thread
    /// that lives until the plane is dropped (children are tied to it).
    pub async fn start(tag: &str) -> anyhow::Result<Self> {
        let dir = lockstep_testenv::cluster::default_state_root().join(format!("bench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread_dir = dir.clone();
        let thread = std::thread::Builder::new().name(format!("plane-{tag}")).spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("plane runtime");
            // The fakes serve on this runtime; it stays up until `stop`.
            let started = rt.block_on(state::start(&thread_dir, Lifetime::TiedToParent, None));
            match started {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    let _ = stop_rx.recv();
                    s.stop();
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{e} (logs in {})", thread_dir.join("logs").display())));
                }
            }
            drop(rt);
        })?;
        ready_rx.await.context("control-plane thread died")?.map_err(|e| anyhow::anyhow!("control plane: {e}"))?;
        let env = TestEnv::attach(&dir)?;
        Ok(Self { env, dir, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// etcd's backend size (bytes), from its own metrics.
    pub async fn etcd_db_bytes(&self) -> Option<f64> {
        let url = format!("{}/metrics", self.env.state().cluster.etcd_url);
        let text = reqwest::get(url).await.ok()?.text().await.ok()?;
        crate::metrics::sum(&text, "etcd_mvcc_db_total_size_in_bytes", &[])
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
