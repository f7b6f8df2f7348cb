//! Ready conditions: the real cause in the message, the transition time kept while
//! the status does not change.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use lockstep_api::types::Condition;

/// A Ready condition to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Ready {
    pub fn ok(reason: &str, message: impl Into<String>) -> Self {
        Self { status: true, reason: reason.to_owned(), message: message.into() }
    }
    pub fn failed(reason: &str, message: impl Into<String>) -> Self {
        Self { status: false, reason: reason.to_owned(), message: message.into() }
    }
    pub fn status_str(&self) -> &'static str {
        if self.status { "True" } else { "False" }
    }

    /// The conditions list with Ready replaced (other types kept).
    pub fn apply_to(&self, existing: &[Condition]) -> Vec<Condition> {
        let previous = existing.iter().find(|c| c.type_ == "Ready");
        let transition = match previous {
            Some(p) if p.status == self.status_str() => p.last_transition_time.clone(),
            _ => None,
        }
        .or_else(|| Some(Time(Timestamp::now())));
        let mut out: Vec<Condition> = existing.iter().filter(|c| c.type_ != "Ready").cloned().collect();
        out.push(Condition {
            type_: "Ready".into(),
            status: self.status_str().into(),
            reason: Some(self.reason.clone()),
            message: Some(self.message.clone()),
            last_transition_time: transition,
        });
        out
    }

    /// Whether `existing` already says exactly this (no status write needed).
    pub fn is_current(&self, existing: &[Condition]) -> bool {
        existing.iter().any(|c| {
            c.type_ == "Ready"
                && c.status == self.status_str()
                && c.reason.as_deref() == Some(self.reason.as_str())
                && c.message.as_deref() == Some(self.message.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_survives_same_status() {
        let first = Ready::failed("ProviderUnavailable", "backend down").apply_to(&[]);
        let t0 = first[0].last_transition_time.clone();
        let second = Ready::failed("ProviderThrottled", "slow down").apply_to(&first);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].last_transition_time, t0);
        assert_eq!(second[0].reason.as_deref(), Some("ProviderThrottled"));
        assert!(Ready::failed("ProviderThrottled", "slow down").is_current(&second));
        assert!(!Ready::ok("SecretSynced", "secret synced").is_current(&second));
    }
}
