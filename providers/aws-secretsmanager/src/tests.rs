use lockstep_provider_sdk::config::parse;

use super::*;

fn store(kind: StoreKind, ns: Option<&str>, json: &str) -> Store<Config> {
    Store {
        config: parse(json).unwrap(),
        kind,
        name: "s".into(),
        namespace: ns.map(str::to_owned),
        provider_key: "aws".into(),
    }
}

const STATIC: &str = r#"{"service":"SecretsManager","region":"us-east-1","auth":{"secretRef":{
  "accessKeyIDSecretRef":{"name":"aws","key":"id"},"secretAccessKeySecretRef":{"name":"aws","key":"secret"}}}}"#;
const JWT: &str = r#"{"service":"SecretsManager","region":"eu-west-1","role":"arn:aws:iam::123456789012:role/r",
  "auth":{"jwt":{"serviceAccountRef":{"name":"sa"}}}}"#;

fn field(e: ProviderError) -> String {
    match e {
        ProviderError::InvalidConfig(c) => c.field,
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_checks_name_the_field() {
    let with = |patch: &str| {
        let mut v: Value = serde_json::from_str(STATIC).unwrap();
        let p: Value = serde_json::from_str(patch).unwrap();
        v.as_object_mut()
            .unwrap()
            .extend(p.as_object().unwrap().clone());
        check(&serde_json::from_value(v).unwrap())
    };
    assert!(with("{}").is_ok());
    assert_eq!(
        field(with(r#"{"service":"ParameterStore"}"#).unwrap_err()),
        "service"
    );
    assert_eq!(
        field(with(r#"{"region":"evil.example.com/x"}"#).unwrap_err()),
        "region"
    );
    assert_eq!(
        field(with(r#"{"additionalRoles":["arn:aws:iam::1:role/x"]}"#).unwrap_err()),
        "additionalRoles"
    );
    assert_eq!(
        field(with(r#"{"externalID":"x"}"#).unwrap_err()),
        "externalID"
    );
    assert_eq!(field(with(r#"{"auth":{}}"#).unwrap_err()), "auth");
    let missing = parse::<Config>(
        r#"{"service":"SecretsManager","region":"us-east-1","auth":{"secretRef":{"accessKeyIDSecretRef":{"name":"a","key":"b"}}}}"#,
    );
    assert_eq!(
        field(missing.unwrap_err()),
        "auth.secretRef.secretAccessKeySecretRef"
    );
}

#[test]
fn egress_is_the_regional_endpoints() {
    let hosts = |json| {
        SecretsManager::egress(&store(StoreKind::ClusterSecretStore, None, json))
            .unwrap()
            .into_iter()
            .map(|r| r.host)
            .collect::<Vec<_>>()
    };
    assert_eq!(hosts(STATIC), ["secretsmanager.us-east-1.amazonaws.com"]);
    assert_eq!(
        hosts(JWT),
        [
            "secretsmanager.eu-west-1.amazonaws.com",
            "sts.eu-west-1.amazonaws.com"
        ]
    );
}

#[test]
fn validation_follows_namespace_rules() {
    let v = |kind, ns, json| SecretsManager::validate(&store(kind, ns, json));
    assert_eq!(
        v(StoreKind::SecretStore, Some("a"), STATIC).unwrap(),
        Validation::Ready
    );
    assert_eq!(
        v(StoreKind::ClusterSecretStore, None, JWT).unwrap(),
        Validation::Unknown
    );
    let other = JWT.replace(r#""name":"sa""#, r#""name":"sa","namespace":"b""#);
    assert_eq!(
        v(StoreKind::ClusterSecretStore, None, &other).unwrap(),
        Validation::Ready
    );
    assert_eq!(
        field(v(StoreKind::SecretStore, Some("a"), &other).unwrap_err()),
        "auth.jwt.serviceAccountRef.namespace"
    );
}

#[test]
fn metadata_declares_the_credential_paths() {
    let m = SecretsManager::metadata();
    assert_eq!(m.provider_key, "aws");
    assert_eq!(m.credential_refs.len(), 4);
    assert_eq!(m.token_audiences, ["sts.amazonaws.com"]);
}

#[test]
fn property_prefers_the_dotted_key_like_eso() {
    let r = |p: &str| SecretRef {
        key: "k".into(),
        version: None,
        property: Some(p.into()),
        metadata_policy: MetadataPolicy::None,
    };
    let doc = br#"{"a.b":"flat","a":{"b":"nested"},"n":1}"#.to_vec();
    assert_eq!(select(doc.clone(), &r("a.b")).unwrap(), b"flat");
    assert_eq!(select(doc.clone(), &r("n")).unwrap(), b"1");
    assert_eq!(select(doc.clone(), &r("")).unwrap(), doc);
    assert_eq!(select(doc, &r("x")).unwrap_err().variant(), "not-found");
}
