/// Errors a reconcile returns (everything else ends in a condition).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// A write refused because the lease is no longer valid: not worth retrying here.
    pub fn is_not_leader(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Service(e)) => e.is::<crate::lease::NotLeader>(),
            _ => false,
        }
    }
}
