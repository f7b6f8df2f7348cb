//! The CEL rules (`x-kubernetes-validations`) the CRDs carry: invariants the
//! apiserver can check statically, which ESO checks in its admission webhook.
//! Everything that needs more than a bounded, cheap look at one object (regex
//! validity, duplicate keys, references to other objects, unsupported
//! features) is a Ready=False condition at reconcile time instead; the list
//! is in `docs/crds.md` and [`RECONCILE_TIME_CHECKS`].

/// One CEL rule and the message the apiserver returns when it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CelRule {
    /// Stable name, used by tests and docs.
    pub id: &'static str,
    /// Where the rule sits, as a schema path.
    pub at: &'static str,
    pub rule: &'static str,
    pub message: &'static str,
}

pub const PROVIDER_ONE_KEY: CelRule = CelRule {
    id: "provider-one-key",
    at: "SecretStore/ClusterSecretStore spec.provider",
    rule: "size(self) == 1",
    message: "spec.provider must have exactly one key: the provider name",
};

pub const STORE_REFRESH_INTERVAL: CelRule = CelRule {
    id: "store-refresh-interval",
    at: "SecretStore/ClusterSecretStore spec.refreshInterval",
    rule: r"type(self) == int ? self >= 0 : self.matches('^(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$')",
    message: "refreshInterval must be a non-negative number of seconds or a Go duration such as 5m",
};

pub const DATA_OR_DATA_FROM: CelRule = CelRule {
    id: "data-or-datafrom",
    at: "ExternalSecret spec, ClusterExternalSecret spec.externalSecretSpec",
    rule: "(has(self.data) && size(self.data) > 0) || (has(self.dataFrom) && size(self.dataFrom) > 0)",
    message: "either data or dataFrom should be specified",
};

pub const DELETE_NEEDS_OWNER: CelRule = CelRule {
    id: "delete-needs-owner",
    at: "spec.target",
    rule: "!has(self.deletionPolicy) || self.deletionPolicy != 'Delete' || !has(self.creationPolicy) || self.creationPolicy == 'Owner' || self.creationPolicy == 'Orphan'",
    message: "deletionPolicy=Delete must not be used when the controller does not own the secret: use creationPolicy=Owner",
};

pub const MERGE_DELETION_NEEDS_SECRET: CelRule = CelRule {
    id: "merge-deletion-needs-secret",
    at: "spec.target",
    rule: "!has(self.deletionPolicy) || self.deletionPolicy != 'Merge' || !has(self.creationPolicy) || self.creationPolicy != 'None'",
    message: "deletionPolicy=Merge must not be used with creationPolicy=None: there is no secret to merge with",
};

pub const TEMPLATE_FROM_TARGET: CelRule = CelRule {
    id: "template-from-target",
    at: "spec.target",
    rule: "has(self.manifest) || !has(self.template) || !has(self.template.templateFrom) || self.template.templateFrom.all(t, !has(t.target) || t.target.lowerAscii() in ['data', 'annotations', 'labels'])",
    message: "templateFrom[].target must be Data, Annotations or Labels for a Secret target",
};

pub const BOOTSTRAP_TOKEN_TYPE: CelRule = CelRule {
    id: "bootstrap-token-type",
    at: "spec.target.template",
    rule: "!has(self.type) || self.type != 'bootstrap.kubernetes.io/token'",
    message: "template type bootstrap.kubernetes.io/token is not allowed",
};

pub const SOURCE_REF_ONE: CelRule = CelRule {
    id: "source-ref-one",
    at: "spec.data[].sourceRef, spec.dataFrom[].sourceRef",
    rule: "has(self.storeRef) != has(self.generatorRef)",
    message: "sourceRef must name exactly one of storeRef or generatorRef",
};

pub const DATA_FROM_ONE_SOURCE: CelRule = CelRule {
    id: "datafrom-one-source",
    at: "spec.dataFrom[]",
    rule: "(has(self.extract) ? 1 : 0) + (has(self.find) ? 1 : 0) + ((has(self.sourceRef) && has(self.sourceRef.generatorRef)) ? 1 : 0) == 1",
    message: "each dataFrom item must have exactly one of extract, find or sourceRef.generatorRef",
};

pub const REWRITE_ONE_OP: CelRule = CelRule {
    id: "rewrite-one-op",
    at: "spec.dataFrom[].rewrite[]",
    rule: "(has(self.regexp) ? 1 : 0) + (has(self.transform) ? 1 : 0) + (has(self.merge) ? 1 : 0) == 1",
    message: "each rewrite must have exactly one of regexp, transform or merge",
};

/// Every CEL rule of the CRDs.
pub const ALL: &[CelRule] = &[
    PROVIDER_ONE_KEY,
    STORE_REFRESH_INTERVAL,
    DATA_OR_DATA_FROM,
    DELETE_NEEDS_OWNER,
    MERGE_DELETION_NEEDS_SECRET,
    TEMPLATE_FROM_TARGET,
    BOOTSTRAP_TOKEN_TYPE,
    SOURCE_REF_ONE,
    DATA_FROM_ONE_SOURCE,
    REWRITE_ONE_OP,
];

/// Invariants ESO rejects at admission (or fails on) that Lockstep reports
/// as Ready=False at reconcile time, with why they are not CEL rules.
pub const RECONCILE_TIME_CHECKS: &[(&str, &str)] = &[
    ("regex validity (namespaceRegexes, find.name.regexp, rewrite.regexp.source)", "CEL cannot test whether a string compiles as RE2"),
    ("duplicate data[].secretKey with deletionPolicy Retain", "pairwise comparison is O(n^2): it would force a small maxItems on data[]"),
    ("templates (syntax, missing keys, functions)", "needs the template engine"),
    ("service-account-token type with a templated service-account.name annotation", "depends on the configured template delimiters"),
    ("provider key with no plugin, provider config meaning", "the plugin set is configuration, not schema; the plugin validates its config"),
    ("referenced store / ConfigMap / Secret missing, controller class, ClusterSecretStore conditions", "needs other objects"),
    ("unsupported: target.manifest, generatorRef, template engineVersion v1, PushSecret", "reported by name, never silently ignored"),
];
