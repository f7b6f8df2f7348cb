//! The rendering model (scopes, targets, order, policies), the Jinja opt-in,
//! limits, rewrite transforms, and the functions newer than the ESO oracle.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use common::*;
use lockstep_templates::*;

fn data() -> BTreeMap<String, Vec<u8>> {
    let mut d = BTreeMap::new();
    d.insert("user".to_owned(), b"admin".to_vec());
    d.insert("pass".to_owned(), b"s3cr3t".to_vec());
    d.insert("my-key".to_owned(), b"dashed".to_vec());
    d
}

fn renderer() -> Renderer {
    Renderer::new(RendererConfig::default()).unwrap()
}

#[test]
fn order_of_application_and_merge_policy() {
    let r = renderer();
    // No data/templateFrom: provider data passes through.
    let out = r.render(&TemplateSpec { secret_type: Some("Opaque".into()), ..Default::default() }, &data()).unwrap();
    assert_eq!(out.data, data());
    assert_eq!(out.secret_type.as_deref(), Some("Opaque"));

    let mut spec = TemplateSpec::default();
    spec.data.insert("conn".into(), "{{ .user }}:{{ .pass }}".into());
    spec.data.insert("user".into(), "root".into());
    spec.template_from.push(TemplateFrom {
        source: TemplateSource::Literal("user: from-literal\nextra: '{{ index . \"my-key\" }}'\n".into()),
        target: TemplateTarget::Data,
        values_decoding_strategy: DecodingStrategy::None,
    });
    spec.metadata.labels.insert("app".into(), "{{ .user | upper }}".into());
    spec.metadata.annotations.insert("note".into(), "fixed".into());
    let out = r.render(&spec, &data()).unwrap();
    // Replace: only template outputs; template.data wins over templateFrom.
    let keys: Vec<&str> = out.data.keys().map(String::as_str).collect();
    assert_eq!(keys, ["conn", "extra", "user"]);
    assert_eq!(out.data["user"], b"root");
    assert_eq!(out.data["extra"], b"dashed");
    assert_eq!(out.data["conn"], b"admin:s3cr3t");
    assert_eq!(out.labels["app"], "ADMIN");
    assert_eq!(out.annotations["note"], "fixed");

    spec.merge_policy = MergePolicy::Merge;
    let out = r.render(&spec, &data()).unwrap();
    assert_eq!(out.data["pass"], b"s3cr3t");
    assert_eq!(out.data["user"], b"root");
}

#[test]
fn template_from_configmap_and_secret() {
    let r = renderer();
    let mut spec = TemplateSpec::default();
    spec.template_from.push(TemplateFrom {
        source: TemplateSource::ConfigMap {
            name: "tpl".into(),
            data: [("config.ini".to_owned(), "password={{ .pass }}".to_owned()), ("kv".to_owned(), "a: '{{ .user }}'".to_owned())].into(),
            items: vec![
                TemplateRef { key: "config.ini".into(), template_as: TemplateScope::Values },
                TemplateRef { key: "kv".into(), template_as: TemplateScope::KeysAndValues },
            ],
        },
        target: TemplateTarget::Data,
        values_decoding_strategy: DecodingStrategy::None,
    });
    spec.template_from.push(TemplateFrom {
        source: TemplateSource::Secret {
            name: "tpl-secret".into(),
            data: [("owner".to_owned(), b"{{ .user }}".to_vec())].into(),
            items: vec![TemplateRef { key: "owner".into(), template_as: TemplateScope::Values }],
        },
        target: TemplateTarget::Annotations,
        values_decoding_strategy: DecodingStrategy::None,
    });
    let out = r.render(&spec, &data()).unwrap();
    assert_eq!(out.data["config.ini"], b"password=s3cr3t");
    assert_eq!(out.data["a"], b"admin");
    assert_eq!(out.annotations["owner"], "admin");

    let TemplateSource::ConfigMap { items, .. } = &mut spec.template_from[0].source else { unreachable!() };
    items.push(TemplateRef { key: "absent".into(), template_as: TemplateScope::Values });
    let err = r.render(&spec, &data()).unwrap_err().to_string();
    assert_eq!(err, "error in configmap tpl: missing key absent");
}

#[test]
fn values_decoding_strategy() {
    let r = renderer();
    let mk = |s: DecodingStrategy, lit: &str| TemplateSpec {
        template_from: vec![TemplateFrom { source: TemplateSource::Literal(lit.into()), target: TemplateTarget::Data, values_decoding_strategy: s }],
        ..Default::default()
    };
    let out = r.render(&mk(DecodingStrategy::Base64, "k: '{{ .pass | b64enc }}'"), &data()).unwrap();
    assert_eq!(out.data["k"], b"s3cr3t");
    let err = r.render(&mk(DecodingStrategy::Base64, "k: 'not base64!'"), &data()).unwrap_err().to_string();
    assert!(err.starts_with("failed to decode rendered template value for key k"), "{err}");
    let out = r.render(&mk(DecodingStrategy::Auto, "k: 'plain text'"), &data()).unwrap();
    assert_eq!(out.data["k"], b"plain text");
}

#[test]
fn missing_key_names_the_key_and_never_the_values() {
    let r = renderer();
    for (syntax, tpl) in [(Syntax::GoTemplate, "{{ .pass }}{{ .passwd }}"), (Syntax::Jinja, "{{ pass }}{{ passwd }}")] {
        let mut spec = TemplateSpec { syntax, ..Default::default() };
        spec.data.insert("password".into(), tpl.into());
        let err = r.render(&spec, &data()).unwrap_err().to_string();
        assert!(err.contains(r#"map has no entry for key "passwd""#), "{err}");
        assert!(err.starts_with("unable to execute template at key password"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}

#[test]
fn jinja_syntax_opt_in() {
    assert_eq!(Syntax::from_annotation("Jinja"), Some(Syntax::Jinja));
    assert_eq!(Syntax::from_annotation("go"), Some(Syntax::GoTemplate));
    assert_eq!(SYNTAX_ANNOTATION, "lockstep.dev/template-syntax");
    let r = renderer();
    let mut spec = TemplateSpec { syntax: Syntax::Jinja, ..Default::default() };
    spec.data.insert("a".into(), r#"{% for k in ["user", "pass"] %}{{ data[k] | upper }};{% endfor %}{{ data["my-key"] }}"#.into());
    spec.data.insert("b".into(), r#"{{ user | replace("adm", "x") }} {{ "a,b" | splitList(",") | join("-") }}"#.into());
    let out = r.render(&spec, &data()).unwrap();
    assert_eq!(out.data["a"], b"ADMIN;S3CR3T;dashed");
    assert_eq!(out.data["b"], b"xin a-b");
    // Go syntax is not Jinja syntax: the same text is a Go parse error.
    let mut go = TemplateSpec::default();
    go.data.insert("a".into(), "{% if true %}x{% endif %}{{ user }}".into());
    assert!(r.render(&go, &data()).is_err());
}

#[test]
fn unsupported_constructs_name_construct_and_position() {
    let r = renderer();
    for (tpl, what, pos) in [
        ("x\n {{ define \"t\" }}{{ end }}", "{{define}} is not supported", "2:5"),
        ("{{ template \"t\" }}", "{{template}} is not supported", "1:4"),
        ("{{ block \"b\" . }}{{ end }}", "{{block}} is not supported", "1:4"),
        ("{{ html \"<\" }}", r#"function "html" is not available"#, "1:4"),
        ("{{ break }}", "{{break}} outside {{range}}", "1:4"),
    ] {
        let mut spec = TemplateSpec::default();
        spec.data.insert("k".into(), tpl.into());
        let err = r.render(&spec, &data()).unwrap_err().to_string();
        assert!(err.starts_with("unable to parse template at key k"), "{err}");
        assert!(err.contains(what) && err.contains(pos), "{tpl}: {err}");
    }
}

#[test]
fn custom_delimiters() {
    let r = Renderer::new(RendererConfig { left_delimiter: "<<".into(), right_delimiter: ">>".into(), ..Default::default() }).unwrap();
    let mut spec = TemplateSpec::default();
    spec.data.insert("k".into(), "{{ literal }} <<- .user | upper ->> !".into());
    assert_eq!(r.render(&spec, &data()).unwrap().data["k"], b"{{ literal }}ADMIN!");
}

#[test]
fn limits_stop_runaway_templates() {
    let r = Renderer::new(RendererConfig { limits: Limits { max_output_bytes: 1000, fuel: 20_000, ..Limits::default() }, ..Default::default() }).unwrap();
    let render = |tpl: &str| {
        let mut spec = TemplateSpec::default();
        spec.data.insert("k".into(), tpl.into());
        r.render(&spec, &data()).map(|_| ()).unwrap_err().to_string()
    };
    let err = render("{{ range until 1000 }}{{ range until 1000 }}{{ end }}{{ end }}");
    assert!(err.contains("fuel limit"), "{err}");
    let err = render("{{ range until 500 }}xxxxx{{ end }}");
    assert!(err.contains("rendered output exceeds the limit of 1000 bytes"), "{err}");
    let err = render(r#"{{ repeat 100000000 "x" }}"#);
    assert!(err.contains("exceeds the output limit"), "{err}");
    // The renderer keeps working.
    let mut spec = TemplateSpec::default();
    spec.data.insert("k".into(), "{{ .user }}".into());
    assert_eq!(r.render(&spec, &data()).unwrap().data["k"], b"admin");
}

#[test]
fn rewrite_transform() {
    let r = renderer();
    assert_eq!(r.transform_key("{{ .value | upper }}", "db-pass").unwrap(), "DB-PASS");
    assert_eq!(r.transform_key(r#"{{ .value | replace "-" "_" }}"#, "a-b").unwrap(), "a_b");
    // No missingkey=error in transforms (as ESO).
    assert_eq!(r.transform_key("{{ .other }}", "k").unwrap(), "<no value>");
}

#[test]
fn binary_values_into_labels_are_rejected_not_mangled() {
    let r = renderer();
    let mut d = data();
    d.insert("bin".into(), vec![0xff, 0x00]);
    let mut spec = TemplateSpec::default();
    spec.metadata.labels.insert("l".into(), "{{ .bin }}".into());
    let err = r.render(&spec, &d).unwrap_err();
    assert_eq!(err, TemplateError::NotUtf8 { key: "l".into(), target: "label" });
}

#[test]
fn cert_sans_newer_than_the_oracle() {
    let r = renderer();
    let mut d = BTreeMap::new();
    d.insert("cert".to_owned(), fixture("leaf.crt"));
    let mut spec = TemplateSpec::default();
    spec.data.insert("k".into(), r#"{{ .cert | certSANs | join "," }}"#.into());
    let out = r.render(&spec, &d).unwrap();
    assert_eq!(
        String::from_utf8(out.data["k"].clone()).unwrap(),
        "app.example.test,www.example.test,10.1.2.3,2001:db8::1,ops@example.test,spiffe://example.test/app"
    );
    spec.data.insert("k".into(), "{{ \"nope\" | certSANs }}".into());
    assert!(r.render(&spec, &d).unwrap_err().to_string().contains("failed to decode PEM block"));
}

#[test]
fn rsa_decrypt_newer_than_the_oracle() {
    use rsa::pkcs8::DecodePrivateKey;
    let key_pem = fixture_str("leaf.key");
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&key_pem).unwrap();
    let plain = b"\x00binary\xffplaintext".to_vec();
    let mut rng = rand::thread_rng();
    let ct = rsa::RsaPublicKey::from(&key).encrypt(&mut rng, rsa::Oaep::new::<sha2::Sha256>(), &plain).unwrap();
    let ct1 = rsa::RsaPublicKey::from(&key).encrypt(&mut rng, rsa::Oaep::new::<sha1::Sha1>(), &plain).unwrap();
    let mut d = BTreeMap::new();
    d.insert("key".to_owned(), key_pem.into_bytes());
    d.insert("ct".to_owned(), B64.encode(&ct).into_bytes());
    d.insert("ct1".to_owned(), B64.encode(&ct1).into_bytes());
    d.insert("pkcs1".to_owned(), fixture("leaf-pkcs1.key"));
    let r = renderer();
    let mut spec = TemplateSpec::default();
    spec.data.insert("a".into(), r#"{{ .key | rsaDecrypt "RSA-OAEP" "SHA256" (.ct | b64dec) }}"#.into());
    spec.data.insert("b".into(), r#"{{ .pkcs1 | rsaDecrypt "RSA-OAEP" "SHA1" (.ct1 | b64dec) }}"#.into());
    spec.data.insert("c".into(), r#"{{ .key | rsaDecrypt "None" "SHA256" "as-is" }}"#.into());
    let out = r.render(&spec, &d).unwrap();
    assert_eq!(out.data["a"], plain);
    assert_eq!(out.data["b"], plain);
    assert_eq!(out.data["c"], b"as-is");
    spec.data.insert("a".into(), r#"{{ .key | rsaDecrypt "RSA-OAEP" "SHA512" (.ct | b64dec) }}"#.into());
    assert!(r.render(&spec, &d).unwrap_err().to_string().contains("error decrypting data with RSA"));
    spec.data.insert("a".into(), r#"{{ .key | rsaDecrypt "PKCS1" "SHA256" "x" }}"#.into());
    assert!(r.render(&spec, &d).unwrap_err().to_string().contains("decryption scheme PKCS1 is not supported"));
}

#[test]
fn cli_renders_files() {
    let dir = std::env::temp_dir().join(format!("lockstep-tpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.yaml"), "type: Opaque\ndata:\n  admin-password: \"{{ .admin_password }}\"\n  admin-user: admin\n").unwrap();
    std::fs::write(dir.join("d.yaml"), format!("data:\n  admin_password: {}\n", B64.encode("pw"))).unwrap();
    let out = lockstep_templates::cli::render_files(&renderer(), &dir.join("t.yaml"), &dir.join("d.yaml")).unwrap();
    assert_eq!(out.data["admin-password"], b"pw");
    assert_eq!(out.data["admin-user"], b"admin");
    assert_eq!(out.secret_type.as_deref(), Some("Opaque"));
    std::fs::remove_dir_all(&dir).ok();
}
