//! Operator-only grants: what no store author can ask for.
//!
//! Private, loopback and link-local destinations, plain `http`, the cloud
//! metadata address and ambient credentials are denied to every plugin unless
//! the operator grants them, per controller class and/or store kind. Rules are
//! CLI-flag strings (repeatable `--grant`):
//!
//! ```text
//! --grant SELECTOR=CAPABILITY[,CAPABILITY...]
//!   SELECTOR    kind:ClusterSecretStore | kind:SecretStore | class:NAME
//!               | class:NAME/kind:KIND | *
//!   CAPABILITY  private | loopback | link-local | metadata | http | ambient:NAME
//! --ambient-source NAME=env:VAR | NAME=file:/path
//! ```
//!
//! A rule applies when every qualifier it names matches the store (`*`
//! names none). A namespaced SecretStore is written by a tenant, so it only
//! gets rules that name `kind:SecretStore` explicitly: `*` and `class:X`
//! rules apply to ClusterSecretStores only. A store's effective grants are
//! the union of its rules; nothing in a store's spec can add to them.
//! `ambient:NAME` needs a matching `--ambient-source`.

use std::collections::BTreeSet;

use lockstep_credentials::{AmbientGrants, StoreKind};

/// Destination classes and plain http, as granted by the operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NetworkGrants {
    /// RFC 1918, CGNAT (100.64/10) and IPv6 unique-local addresses.
    pub private: bool,
    /// 127/8 and ::1.
    pub loopback: bool,
    /// 169.254/16 and fe80::/10, the metadata address excepted.
    pub link_local: bool,
    /// The cloud metadata address 169.254.169.254 (and fd00:ec2::254).
    pub metadata: bool,
    /// `http` URLs.
    pub plain_http: bool,
}

impl NetworkGrants {
    fn union(self, o: Self) -> Self {
        Self {
            private: self.private || o.private,
            loopback: self.loopback || o.loopback,
            link_local: self.link_local || o.link_local,
            metadata: self.metadata || o.metadata,
            plain_http: self.plain_http || o.plain_http,
        }
    }
}

/// The grants that apply to one store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EffectiveGrants {
    pub network: NetworkGrants,
    /// Ambient credentials granted, with their sources.
    pub ambient: AmbientGrants,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    class: Option<String>,
    kind: Option<StoreKind>,
    network: NetworkGrants,
    ambient: BTreeSet<String>,
}

/// The operator's grant rules and ambient-credential sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorGrants {
    rules: Vec<Rule>,
    sources: AmbientGrants,
}

/// A malformed `--grant` or `--ambient-source` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GrantParseError(String);

impl OperatorGrants {
    /// Parses repeated `--grant` and `--ambient-source` values.
    pub fn from_flags<S: AsRef<str>>(grants: &[S], ambient_sources: &[S]) -> Result<Self, GrantParseError> {
        let mut this = Self::default();
        for src in ambient_sources {
            let (name, source) = AmbientGrants::parse_definition(src.as_ref()).map_err(GrantParseError)?;
            this.sources.grant(name, source);
        }
        for g in grants {
            this.add_rule(g.as_ref())?;
        }
        Ok(this)
    }

    /// Adds one `SELECTOR=CAPABILITY[,...]` rule.
    pub fn add_rule(&mut self, text: &str) -> Result<(), GrantParseError> {
        let err = |m: String| GrantParseError(format!("--grant {text:?}: {m}"));
        let (selector, caps) = text.split_once('=').ok_or_else(|| err("expected SELECTOR=CAPABILITY[,...]".into()))?;
        let (mut class, mut kind) = (None, None);
        if selector != "*" {
            for part in selector.split('/') {
                match part.split_once(':') {
                    Some(("class", c)) if !c.is_empty() && class.is_none() => class = Some(c.to_string()),
                    Some(("kind", "SecretStore")) if kind.is_none() => kind = Some(StoreKind::SecretStore),
                    Some(("kind", "ClusterSecretStore")) if kind.is_none() => kind = Some(StoreKind::ClusterSecretStore),
                    _ => return Err(err(format!("bad selector part {part:?}; expected class:NAME, kind:SecretStore or kind:ClusterSecretStore"))),
                }
            }
        }
        let mut network = NetworkGrants::default();
        let mut ambient = BTreeSet::new();
        for cap in caps.split(',').map(str::trim) {
            match cap {
                "private" => network.private = true,
                "loopback" => network.loopback = true,
                "link-local" => network.link_local = true,
                "metadata" => network.metadata = true,
                "http" => network.plain_http = true,
                _ => match cap.strip_prefix("ambient:") {
                    Some(name) if !name.is_empty() => {
                        if !self.sources.names().any(|n| n == name) {
                            return Err(err(format!("ambient credential {name:?} has no --ambient-source")));
                        }
                        ambient.insert(name.to_string());
                    }
                    _ => {
                        return Err(err(format!(
                            "unknown capability {cap:?}; expected private, loopback, link-local, metadata, http or ambient:NAME"
                        )))
                    }
                },
            }
        }
        self.rules.push(Rule { class, kind, network, ambient });
        Ok(())
    }

    /// The grants of a store of `kind` reconciled by controller `class`.
    pub fn for_store(&self, kind: StoreKind, class: Option<&str>) -> EffectiveGrants {
        let mut network = NetworkGrants::default();
        let mut names = BTreeSet::new();
        for rule in &self.rules {
            let kind_ok = match (rule.kind, kind) {
                (Some(k), _) => k == kind,
                // Tenant-written stores get only rules that name them.
                (None, StoreKind::SecretStore) => false,
                (None, StoreKind::ClusterSecretStore) => true,
            };
            let class_ok = rule.class.as_deref().is_none_or(|c| Some(c) == class);
            if kind_ok && class_ok {
                network = network.union(rule.network);
                names.extend(rule.ambient.iter().cloned());
            }
        }
        EffectiveGrants { network, ambient: self.sources.restricted_to(names.iter().map(String::as_str)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_stores_get_only_rules_that_name_them() {
        let g = OperatorGrants::from_flags(
            &["*=loopback", "class:internal=private,http", "kind:ClusterSecretStore=metadata,ambient:tok", "class:internal/kind:SecretStore=link-local"],
            &["tok=file:/var/run/secrets/tokens/azure"],
        )
        .unwrap();
        let css = g.for_store(StoreKind::ClusterSecretStore, Some("internal"));
        assert!(css.network.loopback && css.network.private && css.network.plain_http && css.network.metadata && !css.network.link_local);
        assert_eq!(css.ambient.names().collect::<Vec<_>>(), vec!["tok"]);
        let ss = g.for_store(StoreKind::SecretStore, Some("internal"));
        assert_eq!(ss.network, NetworkGrants { link_local: true, ..Default::default() });
        assert!(ss.ambient.is_empty());
        assert_eq!(g.for_store(StoreKind::SecretStore, None), EffectiveGrants::default());
    }

    #[test]
    fn parse_errors_are_specific() {
        assert!(OperatorGrants::from_flags(&["kind:Foo=private"], &[] as &[&str]).unwrap_err().to_string().contains("bad selector"));
        assert!(OperatorGrants::from_flags(&["*=everything"], &[] as &[&str]).unwrap_err().to_string().contains("unknown capability"));
        assert!(OperatorGrants::from_flags(&["*=ambient:x"], &[] as &[&str]).unwrap_err().to_string().contains("no --ambient-source"));
        assert!(OperatorGrants::from_flags(&["private"], &[] as &[&str]).is_err());
    }
}
