//! lockstep-sync against ESO's stated behaviour (eso.md §1.3, §2.3, §3.2).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use lockstep_api::manifest::{self, Manifest};
use lockstep_api::types::{ClusterSecretStoreCondition, CreationPolicy, DnsLabel, StoreKind};
use lockstep_api::v1::{ClusterExternalSecret, ExternalSecretSpec};
use lockstep_sync::hash::{CREATED_BY_LABEL, DATA_HASH_ANNOTATION, MANAGED_LABEL, created_by, data_hash};
use lockstep_sync::namespaces::{ces_external_secret, ces_namespaces, store_allows_namespace, validate_store_conditions};
use lockstep_sync::{
    Call, EmptyDataOutcome, FetchResult, ItemSource, SecretSource, SyncError, TemplateObjects, desired_secret, on_empty_data, plan,
    resolve,
};
use lockstep_templates::{Renderer, RendererConfig, Syntax};

fn spec(yaml: &str) -> ExternalSecretSpec {
    serde_yaml::from_str(yaml).unwrap()
}

fn renderer() -> Renderer {
    Renderer::new(RendererConfig::default()).unwrap()
}

fn bytes(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    entries.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

fn value(s: &str) -> FetchResult {
    FetchResult::Value(s.as_bytes().to_vec())
}

fn map(entries: &[(&str, &str)]) -> FetchResult {
    FetchResult::Map(bytes(entries))
}

#[test]
fn plan_dedupes_same_remote_ref_and_orders_datafrom_first() {
    let s = spec(
        r#"
secretStoreRef: {name: store}
data:
- {secretKey: a, remoteRef: {key: db, property: user}}
- {secretKey: b, remoteRef: {key: db, property: user, decodingStrategy: Base64}}
- {secretKey: c, remoteRef: {key: db, property: pass}}
- {secretKey: d, remoteRef: {key: db}, sourceRef: {storeRef: {name: cluster, kind: ClusterSecretStore}}}
dataFrom:
- extract: {key: db}
- find: {name: {regexp: "^db"}}
"#,
    );
    let p = plan(&s, "ns1").unwrap();
    // a and b differ only in decoding: one call. c is another property, d another store.
    assert_eq!(p.fetches.len(), 5);
    let sources: Vec<ItemSource> = p.items.iter().map(|i| i.source).collect();
    assert_eq!(
        sources,
        [ItemSource::DataFrom(0), ItemSource::DataFrom(1), ItemSource::Data(0), ItemSource::Data(1), ItemSource::Data(2), ItemSource::Data(3)]
    );
    assert_eq!(p.items[2].fetch, p.items[3].fetch);
    assert!(matches!(&p.fetches[0].call, Call::GetSecretMap(r) if r.key == "db"));
    assert!(matches!(&p.fetches[1].call, Call::FindSecrets(f) if f.name_regexp.as_deref() == Some("^db")));
    let stores = p.stores();
    assert_eq!(stores.len(), 2);
    assert_eq!(p.fetches[0].store.namespace.as_deref(), Some("ns1"), "a SecretStore resolves in the ExternalSecret's namespace");
    let cluster = p.fetches.iter().find(|f| f.store.kind == StoreKind::ClusterSecretStore).unwrap();
    assert_eq!(cluster.store.namespace, None);
}

#[test]
fn reconcile_time_checks() {
    let err = |y: &str| plan(&spec(y), "ns").unwrap_err();
    assert!(matches!(
        err("secretStoreRef: {name: s}\ndataFrom:\n- sourceRef: {generatorRef: {kind: Password, name: p}}"),
        SyncError::Unsupported { what } if what.contains("generatorRef")
    ));
    assert!(matches!(err("data:\n- {secretKey: a, remoteRef: {key: k}}"), SyncError::NoStore { .. }));
    assert!(matches!(
        err("secretStoreRef: {name: s}\ndata:\n- {secretKey: a, remoteRef: {key: k}}\n- {secretKey: a, remoteRef: {key: j}}"),
        SyncError::DuplicateSecretKey { key } if key == "a"
    ));
    // Duplicates are fine when the deletion policy is not Retain.
    plan(&spec("secretStoreRef: {name: s}\ntarget: {deletionPolicy: Merge}\ndata:\n- {secretKey: a, remoteRef: {key: k}}\n- {secretKey: a, remoteRef: {key: j}}"), "ns").unwrap();
    assert!(matches!(
        err("secretStoreRef: {name: s}\ndataFrom:\n- find: {name: {regexp: \"([\"}}"),
        SyncError::InvalidRegex { field, .. } if field == "spec.dataFrom[0].find.name.regexp"
    ));
    assert!(matches!(
        err("secretStoreRef: {name: s}\ndataFrom:\n- extract: {key: k}\n  rewrite:\n  - regexp: {source: \"(\", target: x}"),
        SyncError::InvalidRegex { .. }
    ));
    assert!(matches!(
        err("secretStoreRef: {name: s}\ntarget: {manifest: {apiVersion: v1, kind: ConfigMap}}\ndata:\n- {secretKey: a, remoteRef: {key: k}}"),
        SyncError::Unsupported { .. }
    ));
    assert!(matches!(
        err("secretStoreRef: {name: s}\ntarget: {template: {engineVersion: v1}}\ndata:\n- {secretKey: a, remoteRef: {key: k}}"),
        SyncError::Unsupported { .. }
    ));
    assert!(matches!(err("secretStoreRef: {name: s}"), SyncError::InvalidSpec { .. }));
}

#[test]
fn data_wins_over_datafrom_and_later_datafrom_wins() {
    let s = spec(
        r#"
secretStoreRef: {name: s}
dataFrom:
- extract: {key: one}
- extract: {key: two}
data:
- {secretKey: shared, remoteRef: {key: three}}
"#,
    );
    let p = plan(&s, "ns").unwrap();
    let results = [map(&[("shared", "from-one"), ("x", "1")]), map(&[("shared", "from-two"), ("y", "2")]), value("from-data")];
    let out = resolve(&s, &p, &results, &renderer()).unwrap();
    assert_eq!(out.data, bytes(&[("shared", "from-data"), ("x", "1"), ("y", "2")]));
}

#[test]
fn conversion_only_without_rewrite_then_validation_and_decoding() {
    let s = spec(
        r#"
secretStoreRef: {name: s}
dataFrom:
- extract: {key: k, conversionStrategy: Unicode, decodingStrategy: Base64}
- find: {name: {regexp: "."}}
  rewrite:
  - regexp: {source: "^path/(.*)$", target: "p-$1"}
  - transform: {template: "{{ .value | upper }}"}
"#,
    );
    let p = plan(&s, "ns").unwrap();
    let results = [map(&[("a/b", "aGk="), ("", "ignored")]), map(&[("path/x", "1"), ("path/y", "2")])];
    let out = resolve(&s, &p, &results, &renderer()).unwrap();
    assert_eq!(out.data, bytes(&[("P-X", "1"), ("P-Y", "2"), ("a_U002f_b", "hi")]));

    // A rewrite result that is no valid key is refused (no conversion after rewrite).
    let s = spec("secretStoreRef: {name: s}\ndataFrom:\n- extract: {key: k}\n  rewrite:\n  - regexp: {source: \"^\", target: \"bad/\"}");
    let p = plan(&s, "ns").unwrap();
    let err = resolve(&s, &p, &[map(&[("x", "v")])], &renderer()).unwrap_err();
    assert!(matches!(err, SyncError::InvalidKeys { keys } if keys == ["bad/x"]));

    // Collision after conversion.
    let s = spec("secretStoreRef: {name: s}\ndataFrom:\n- extract: {key: k}");
    let p = plan(&s, "ns").unwrap();
    let err = resolve(&s, &p, &[map(&[("a/b", "1"), ("a@b", "2")])], &renderer()).unwrap_err();
    assert_eq!(err.to_string(), "secret name collision during conversion: a_b");
}

#[test]
fn data_items_decode_but_do_not_convert() {
    let s = spec(
        r#"
secretStoreRef: {name: s}
data:
- {secretKey: a, remoteRef: {key: k1, decodingStrategy: Base64URL, conversionStrategy: Unicode}}
- {secretKey: b, remoteRef: {key: k2, nullBytePolicy: Fail}}
"#,
    );
    let p = plan(&s, "ns").unwrap();
    let out = resolve(&s, &p, &[value("-_8="), value("plain")], &renderer()).unwrap();
    assert_eq!(out.data["a"], [0xfb, 0xff]);
    let err = resolve(&s, &p, &[value("-_8="), FetchResult::Value(b"x\0y".to_vec())], &renderer()).unwrap_err();
    assert!(matches!(err, SyncError::NullByte { key } if key == "b"));
}

#[test]
fn not_found_per_deletion_policy() {
    let yaml = |policy: &str| {
        format!("secretStoreRef: {{name: s}}\ntarget: {{deletionPolicy: {policy}}}\ndata:\n- {{secretKey: a, remoteRef: {{key: gone}}}}\n- {{secretKey: b, remoteRef: {{key: here}}}}")
    };
    let s = spec(&yaml("Retain"));
    let p = plan(&s, "ns").unwrap();
    let err = resolve(&s, &p, &[FetchResult::NotFound, value("v")], &renderer()).unwrap_err();
    assert_eq!(err.to_string(), "error processing spec.data[0] (key: gone), err: Secret does not exist");
    for policy in ["Delete", "Merge"] {
        let s = spec(&yaml(policy));
        let out = resolve(&s, &p, &[FetchResult::NotFound, value("v")], &renderer()).unwrap();
        assert_eq!(out.data, bytes(&[("b", "v")]));
        assert_eq!(out.missing.len(), 1);
        assert_eq!(out.missing[0].source, ItemSource::Data(0));
        assert_eq!(out.missing[0].remote_key.as_deref(), Some("gone"));
    }
}

#[test]
fn empty_data_outcomes() {
    let outcome = |t: &str| on_empty_data(&spec(&format!("target: {t}\ndata:\n- {{secretKey: a, remoteRef: {{key: k}}}}")));
    assert_eq!(outcome("{}"), EmptyDataOutcome::RetainSecret);
    assert_eq!(outcome("{deletionPolicy: Delete}"), EmptyDataOutcome::DeleteSecret);
    assert_eq!(outcome("{deletionPolicy: Delete, creationPolicy: Orphan}"), EmptyDataOutcome::DeleteRefused { creation_policy: CreationPolicy::Orphan });
    assert_eq!(outcome("{deletionPolicy: Merge}"), EmptyDataOutcome::Continue);
}

fn seed_ces() -> ClusterExternalSecret {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed/fake.yaml")).unwrap();
    manifest::parse(&text)
        .unwrap()
        .into_iter()
        .find_map(|m| if let Manifest::ClusterExternalSecret(c) = m { Some(c) } else { None })
        .unwrap()
}

fn seed_namespaces() -> Vec<Namespace> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed/fake.yaml")).unwrap();
    manifest::parse(&text).unwrap().into_iter().filter_map(|m| if let Manifest::Namespace(n) = m { Some(n) } else { None }).collect()
}

#[test]
fn seed_renders_two_keys_opaque() {
    let ces = seed_ces();
    let es = ces_external_secret(&ces, "grafana");
    let spec = &es.spec;
    let p = plan(spec, "grafana").unwrap();
    assert_eq!(p.fetches.len(), 1);
    let data = resolve(spec, &p, &[value("s3cr3t-Adm1n-pw")], &renderer()).unwrap();
    let empty = BTreeMap::new();
    let source = SecretSource { name: "grafana-admin-credentials", namespace: "grafana", labels: &empty, annotations: &empty, spec, syntax: Syntax::GoTemplate };
    let secret = desired_secret(&source, &data.data, &TemplateObjects::default(), None, &renderer()).unwrap();
    assert_eq!(secret.name, "grafana-admin-credentials");
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(secret.data, bytes(&[("admin-password", "s3cr3t-Adm1n-pw"), ("admin-user", "admin")]));
    assert_eq!(secret.labels[MANAGED_LABEL], "true");
    assert_eq!(secret.labels[CREATED_BY_LABEL], created_by("grafana", "grafana-admin-credentials"));
    assert_eq!(secret.annotations[DATA_HASH_ANNOTATION], data_hash(&secret.data));
    assert!(secret.owned);
    assert!(!format!("{secret:?}").contains("s3cr3t"), "Debug output carries no values");
}

#[test]
fn merge_policies_and_metadata() {
    let s = spec(
        r#"
secretStoreRef: {name: s}
target:
  creationPolicy: Merge
  template:
    mergePolicy: Merge
    metadata:
      labels: {env: "{{ .env }}"}
      finalizers: [example.com/x]
    data:
      url: "https://{{ .host }}"
data:
- {secretKey: host, remoteRef: {key: h}}
- {secretKey: env, remoteRef: {key: e}}
"#,
    );
    let p = plan(&s, "ns").unwrap();
    let data = resolve(&s, &p, &[value("db.local"), value("prod")], &renderer()).unwrap();
    let es_labels = BTreeMap::from([("from-es".to_string(), "x".to_string())]);
    let empty = BTreeMap::new();
    let source = SecretSource { name: "es", namespace: "ns", labels: &es_labels, annotations: &empty, spec: &s, syntax: Syntax::GoTemplate };
    let existing = bytes(&[("foreign", "keep"), ("host", "old")]);
    let secret = desired_secret(&source, &data.data, &TemplateObjects::default(), Some(&existing), &renderer()).unwrap();
    assert_eq!(secret.data, bytes(&[("env", "prod"), ("foreign", "keep"), ("host", "db.local"), ("url", "https://db.local")]));
    assert_eq!(secret.labels.get("env").map(String::as_str), Some("prod"));
    assert!(!secret.labels.contains_key("from-es"), "with a template the ES labels are not copied");
    assert!(!secret.labels.contains_key(CREATED_BY_LABEL), "only Owner gets created-by");
    assert_eq!(secret.finalizers, ["example.com/x"]);
    assert!(!secret.owned);

    // Without a template: provider data, and the ES labels are copied; Owner ignores existing keys.
    let s = spec("secretStoreRef: {name: s}\ndata:\n- {secretKey: host, remoteRef: {key: h}}");
    let source = SecretSource { name: "es", namespace: "ns", labels: &es_labels, annotations: &empty, spec: &s, syntax: Syntax::GoTemplate };
    let secret = desired_secret(&source, &bytes(&[("host", "h")]), &TemplateObjects::default(), Some(&existing), &renderer()).unwrap();
    assert_eq!(secret.data, bytes(&[("host", "h")]));
    assert_eq!(secret.labels["from-es"], "x");
}

#[test]
fn template_errors_name_keys_not_values() {
    let s = spec("secretStoreRef: {name: s}\ntarget:\n  template:\n    data:\n      out: \"{{ .missing }}\"\ndata:\n- {secretKey: pw, remoteRef: {key: k}}");
    let empty = BTreeMap::new();
    let source = SecretSource { name: "es", namespace: "ns", labels: &empty, annotations: &empty, spec: &s, syntax: Syntax::GoTemplate };
    let err = desired_secret(&source, &bytes(&[("pw", "hunter2")]), &TemplateObjects::default(), None, &renderer()).unwrap_err().to_string();
    assert!(err.contains("out"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let s = spec("secretStoreRef: {name: s}\ntarget:\n  template:\n    templateFrom:\n    - configMap: {name: tmpl, items: [{key: a}]}\ndata:\n- {secretKey: pw, remoteRef: {key: k}}");
    let source = SecretSource { name: "es", namespace: "ns", labels: &empty, annotations: &empty, spec: &s, syntax: Syntax::GoTemplate };
    let err = desired_secret(&source, &bytes(&[("pw", "x")]), &TemplateObjects::default(), None, &renderer()).unwrap_err();
    assert!(matches!(err, SyncError::MissingTemplateObject { kind: "ConfigMap", .. }));
    let objects = TemplateObjects {
        config_maps: BTreeMap::from([("tmpl".to_string(), BTreeMap::from([("a".to_string(), "pw-{{ .pw }}".to_string())]))]),
        ..Default::default()
    };
    let secret = desired_secret(&source, &bytes(&[("pw", "x")]), &objects, None, &renderer()).unwrap();
    assert_eq!(secret.data, bytes(&[("a", "pw-x")]));
}

#[test]
fn ces_selects_seed_namespace_and_generates_es() {
    let mut ces = seed_ces();
    let nss = seed_namespaces();
    assert_eq!(ces_namespaces(&ces, &nss).unwrap(), ["grafana"]);
    ces.spec.namespaces = vec![DnsLabel("payments".into())];
    assert_eq!(ces_namespaces(&ces, &nss).unwrap(), ["grafana", "payments"]);
    ces.spec.namespace_selector = None;
    ces.spec.namespaces.clear();
    assert!(ces_namespaces(&ces, &nss).unwrap().is_empty(), "no selector selects nothing");

    let mut ces = seed_ces();
    ces.metadata.uid = Some("uid-1".into());
    ces.metadata.annotations = Some(BTreeMap::from([("external-secrets.io/force-sync".to_string(), "now".to_string())]));
    let es = ces_external_secret(&ces, "grafana");
    assert_eq!(es.metadata.name.as_deref(), Some("grafana-admin-credentials"));
    assert_eq!(es.metadata.namespace.as_deref(), Some("grafana"));
    assert_eq!(es.metadata.annotations.unwrap()["external-secrets.io/force-sync"], "now");
    let owner = &es.metadata.owner_references.unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("ClusterExternalSecret", "uid-1", Some(true)));
    assert_eq!(es.spec, ces.spec.external_secret_spec);
}

#[test]
fn cluster_store_conditions() {
    let ns = |name: &str, labels: &[(&str, &str)]| -> Namespace {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()}})).unwrap()
    };
    let conds: Vec<ClusterSecretStoreCondition> = serde_yaml::from_str(
        r#"
- namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [a]}]}
- namespaces: [ops]
- namespaceRegexes: ["^dev-"]
"#,
    )
    .unwrap();
    assert!(store_allows_namespace(&[], &ns("anything", &[])).unwrap());
    assert!(store_allows_namespace(&conds, &ns("x", &[("team", "a")])).unwrap());
    assert!(store_allows_namespace(&conds, &ns("ops", &[])).unwrap());
    assert!(store_allows_namespace(&conds, &ns("dev-1", &[])).unwrap());
    assert!(!store_allows_namespace(&conds, &ns("prod", &[("team", "b")])).unwrap());
    let bad: Vec<ClusterSecretStoreCondition> = serde_yaml::from_str("- namespaceRegexes: [\"(\"]").unwrap();
    assert!(validate_store_conditions(&bad).is_err());
    assert!(matches!(store_allows_namespace(&bad, &ns("x", &[])), Err(SyncError::InvalidRegex { .. })));
}
