//! Conformance with ESO: every case is rendered by ESO's own template package
//! (the Go oracle in templates/oracle, ESO v0.16.2) and by Lockstep; outputs
//! must be byte-identical, and a case ESO rejects must be rejected too.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use common::*;
use lockstep_templates::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Case {
    name: String,
    scope: &'static str,
    target: &'static str,
    templates: BTreeMap<String, String>,
    #[serde(serialize_with = "ser_b64map")]
    data: BTreeMap<String, Vec<u8>>,
}

fn ser_b64map<S: serde::Serializer>(m: &BTreeMap<String, Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    let enc: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, B64.encode(v))).collect();
    enc.serialize(s)
}

#[derive(Deserialize, Debug)]
struct OracleResult {
    name: String,
    error: Option<String>,
    data: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

fn oracle() -> PathBuf {
    if let Ok(p) = std::env::var("LOCKSTEP_ESO_ORACLE") {
        return p.into();
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oracle/build.sh");
    let out = Command::new(&script).stderr(Stdio::inherit()).output().expect("run templates/oracle/build.sh (needs Go)");
    assert!(out.status.success(), "templates/oracle/build.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).expect("path").trim())
}

fn run_oracle(cases: &[Case]) -> Vec<OracleResult> {
    let mut child = Command::new(oracle())
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start eso-oracle");
    child.stdin.take().expect("stdin").write_all(&serde_json::to_vec(cases).expect("json")).expect("write cases");
    let out = child.wait_with_output().expect("oracle output");
    assert!(out.status.success(), "eso-oracle failed");
    serde_json::from_slice(&out.stdout).expect("oracle json")
}

/// (name, scope, target, templates)
type CaseRow = (&'static str, &'static str, &'static str, Vec<(&'static str, &'static str)>);

fn cases() -> Vec<CaseRow> {
    let v = |n, t: Vec<(&'static str, &'static str)>| (n, "Values", "Data", t);
    let one = |n, t: &'static str| (n, "Values", "Data", vec![("out", t)]);
    vec![
        v("seed", vec![("admin-password", "{{ .admin_password }}"), ("admin-user", "admin")]),
        one("index-dashed-key", r#"{{ index . "my-key" }}"#),
        one("dashed-field-is-parse-error", "{{ .my-key }}"),
        one("missing-key-errors", "{{ .nope }}"),
        one("index-missing-key-is-empty", r#"[{{ index . "nope" }}]"#),
        one("binary-passthrough", "{{ .bin }}"),
        one("b64dec-binary", "{{ .b64 | b64dec }}"),
        one("b64enc-binary", "{{ .bin | b64enc }}"),
        one("b64-roundtrip", "{{ .bin | b64enc | b64dec }}"),
        one("b32-roundtrip", "{{ .bin | b32enc }}|{{ .admin_password | b32enc | b32dec }}"),
        one("range-index-value", "{{ range $i, $v := (fromJson .json).a.b }}{{ $i }}={{ $v }};{{ end }}"),
        one("if-else-if", r#"{{ if eq .admin_password "x" }}A{{ else if hasPrefix "s3" .admin_password }}B{{ else }}C{{ end }}"#),
        one("with-dot", "{{ with (fromJson .json).a }}{{ .b }}{{ end }}"),
        one("with-else", r#"{{ with "" }}x{{ else }}y{{ end }}"#),
        one("trim-markers", "a  {{- .admin_password -}}  \n b {{ \"c\" -}}\n\n d"),
        one("comments", "x{{/* c */}}y {{- /* c2 */ -}} z"),
        one("variables-assign-in-range", r#"{{ $x := "a" }}{{ $x = "b" }}{{ range list 1 2 }}{{ $x = print $x . }}{{ end }}{{ $x }}"#),
        one("printf-verbs", r#"{{ printf "%s-%d-%q-%05.2f-%x-%v-%t-%5s|%-4d|" "a" 42 "q\n" 3.14159 "hi" (list 1 "a") true "r" 7 }}"#),
        one("printf-piped", r#"{{ .admin_password | printf "%s!" }}"#),
        one("print-spacing", r#"{{ print 1 2 "a" 3 "b" "c" }}|{{ println "x" 1 }}"#),
        one("number-literals", "{{ 1.0 }} {{ 1e6 }} {{ 0x1F }} {{ 1.5e-7 }} {{ 'a' }} {{ -3 }} {{ 0o17 }} {{ 1_000 }} {{ 2.50 }} {{ 123456789.0 }}"),
        one("json-numbers-print", "{{ (fromJson .json).n }} {{ (fromJson .json).f }} {{ (fromJson .json).t }} {{ (fromJson .json).z }}"),
        one("toJson", "{{ fromJson .json | toJson }}"),
        one("toPrettyJson", "{{ fromJson .json | toPrettyJson }}"),
        one("toRawJson", "{{ fromJson .json | toRawJson }}"),
        one("toYaml-json", "{{ fromJson .json | toYaml }}"),
        one("toYaml-strings", r#"{{ dict "a" "true" "b" "x: y" "c" "multi\nline" "d" "" "e" " lead" "f" "plain" "g" "123" "h" "it's" "i" "-x" "j" "- x" "k" "trail\n" "l" "yes" | toYaml }}"#),
        one("toYaml-list", r#"{{ list "a" (dict "k" "v" "k2" (list 1 2)) (list "x") | toYaml }}"#),
        one("toYaml-scalar", r#"{{ "hello" | toYaml }}|{{ 3 | toYaml }}"#),
        one("fromYaml", r#"{{ (fromYaml .yaml).b | join "," }} {{ (fromYaml .yaml).a }} {{ (fromYaml .yaml).c.d }}"#),
        one("sprig-strings", r#"{{ .admin_password | upper }} {{ "  x " | trim }} {{ "abc" | replace "b" "X" }} {{ "hello" | trunc 3 }} {{ "hello" | trunc -2 }} {{ "hello" | substr 1 3 }} {{ "a,b,c" | splitList "," | join "-" }} {{ "x" | repeat 3 }} {{ "q" | quote }} {{ "q" | squote }} {{ contains "ell" "hello" }} {{ hasSuffix "lo" "hello" }} {{ "xxhixx" | trimAll "x" }} {{ "pre-x" | trimPrefix "pre-" }} {{ "x.txt" | trimSuffix ".txt" }} {{ lower "ABC" }} {{ title "hello world" }} {{ cat "a" 1 "b" }} {{ nospace "a b c" }}"#),
        one("split-dict", r#"{{ $p := split "$" "a$b" }}{{ $p._0 }}-{{ $p._1 }}"#),
        one("indent", r#"{{ "a\nb" | indent 2 }}|{{ "a\nb" | nindent 4 }}"#),
        one("dicts", r#"{{ $d := dict "a" 1 "b" 2 }}{{ $_ := set $d "c" 3 }}{{ keys $d | sortAlpha | join "," }} {{ get $d "c" }} {{ get $d "zz" }} {{ hasKey $d "z" }} {{ $d }} {{ omit $d "a" }} {{ pick $d "b" }} {{ $_ := unset $d "b" }}{{ $d }}"#),
        one("merge", r#"{{ $a := dict "x" 1 }}{{ $b := dict "x" 2 "y" 3 }}{{ merge $a $b }} {{ mergeOverwrite (dict "x" 1) (dict "x" 2) }}"#),
        one("lists", r#"{{ list "c" "a" "b" | sortAlpha }} {{ list 1 1 2 | uniq }} {{ first (list "a" "b") }} {{ last (list "a" "b") }} {{ list 1 2 | len }} {{ rest (list 1 2 3) }} {{ initial (list 1 2 3) }} {{ append (list 1) 2 }} {{ prepend (list 1) 0 }} {{ has 2 (list 1 2) }} {{ without (list 1 2 3) 2 }} {{ compact (list "a" "" "b") }} {{ concat (list 1) (list 2 3) }} {{ reverse (list 1 2 3) }} {{ list 1 "a" nil }}"#),
        one("defaults", r#"{{ "" | default "d" }} {{ .admin_password | default "d" }} {{ empty "" }} {{ empty 0 }} {{ empty (list) }} {{ coalesce "" "x" }} {{ ternary "y" "n" true }} {{ 0 | default 5 }}"#),
        one("regex", r#"{{ regexMatch "^s3" .admin_password }} {{ regexFind "[0-9]+" "ab123cd" }} {{ regexFindAll "[a-c]" "abcabc" 2 }} {{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }} {{ regexReplaceAllLiteral "a(x*)b" "-ab-" "$1" }} {{ regexSplit "," "a,b,c" -1 }}"#),
        one("hashes", r#"{{ sha1sum .bin }} {{ sha256sum .admin_password }} {{ sha512sum "x" }} {{ adler32sum "x" }}"#),
        one("math", "{{ add 1 2 3 }} {{ sub 5 2 }} {{ mul 2 3 }} {{ div 7 2 }} {{ mod 7 2 }} {{ max 1 5 3 }} {{ min 4 2 }} {{ add1 1 }} {{ until 3 }}"),
        one("conversions", r#"{{ atoi "42" }} {{ int "7" }} {{ toString 5 }} {{ float64 "1.5" }} {{ int64 3 }} {{ toStrings (list 1 "a") }}"#),
        one("and-or-not", r#"{{ and 1 "" 3 }}|{{ or "" 0 "z" }}|{{ not true }}|{{ and 1 2 }}|{{ or 0 "" }}"#),
        one("comparisons", r#"{{ lt 1 2 }} {{ ge "b" "a" }} {{ ne 1 2 }} {{ eq 1 1 2 }} {{ eq "a" "b" "a" }} {{ le 2 2 }} {{ gt 1.5 1.2 }}"#),
        one("len-bytes", r#"{{ len .bin }} {{ len "é" }} {{ len (dict "a" 1) }}"#),
        one("parens-pipeline", r#"{{ (printf "%s-%s" "a" "b") | upper }}"#),
        one("index-nested", r#"{{ index (list "a" "b") 1 }} {{ index (fromJson .json) "a" "b" }} {{ index (fromJson .json).a.b 2 }}"#),
        one("slice", r#"{{ slice (list 1 2 3) 1 }} {{ slice (list 1 2 3) 0 2 }}"#),
        one("slice-string-errors", r#"{{ slice "abcdef" 1 3 }}"#),
        one("break-continue", "{{ range $i := until 5 }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $i }}{{ end }}"),
        one("range-else", "{{ range list }}x{{ else }}empty{{ end }}"),
        one("range-map-sorted", r#"{{ range $k, $v := dict "b" 2 "a" 1 }}{{ $k }}{{ $v }}{{ end }}"#),
        one("range-dot", r#"{{ range splitList "," "a,b" }}[{{ . }}]{{ end }}"#),
        one("root-in-range", "{{ range list 1 }}{{ $.admin_password }}{{ end }}"),
        one("range-over-data", r#"{{ range $k, $v := . }}{{ if hasPrefix "admin" $k }}{{ $k }}={{ $v }}{{ end }}{{ end }}"#),
        one("nil-falsy", "{{ if not nil }}nil-false{{ end }}"),
        one("raw-string", "{{ `raw\\n{{` }}"),
        one("string-escapes", r#"{{ "tab\there\x41\u00e9\xff" }}"#),
        one("non-function-with-args", r#"{{ .admin_password "x" }}"#),
        one("unknown-function", "{{ nosuch 1 }}"),
        one("env-removed", r#"{{ env "HOME" }}"#),
        one("field-on-string", "{{ .admin_password.x }}"),
        one("unclosed-action", "{{ .admin_password "),
        one("missing-end", "{{ if true }}x"),
        one("volatile-lengths", "{{ uuidv4 | len }} {{ randAlphaNum 12 | len }} {{ randNumeric 4 | len }}"),
        one("date-fixed", r#"{{ date "2006-01-02T15:04:05Z07:00" 86400 }} {{ date "Jan 2, 2006" 0 }}"#),
        one("printf-hex-binary", r#"{{ .bin | printf "%x" }}"#),
        one("multiline-config", "[server]\n{{- range $k, $v := dict \"host\" \"db\" \"port\" \"5432\" }}\n{{ $k }} = {{ $v | quote }}\n{{- end }}\npassword = {{ .admin_password }}\n"),
        one("pkcs12key", "{{ .p12 | b64dec | pkcs12key }}"),
        one("pkcs12cert-chain", "{{ .p12 | b64dec | pkcs12cert }}"),
        one("pkcs12cert-reversed-bags", "{{ .p12reversed | b64dec | pkcs12cert }}"),
        one("pkcs12-pass", r#"{{ .p12pass | b64dec | pkcs12keyPass "1234" }}{{ .p12pass | b64dec | pkcs12certPass "1234" }}"#),
        one("pkcs12-wrong-pass", r#"{{ .p12pass | b64dec | pkcs12keyPass "nope" }}"#),
        one("pkcs12-not-p12", "{{ .admin_password | pkcs12key }}"),
        one("filterPEM-cert", r#"{{ .key_and_cert | filterPEM "CERTIFICATE" }}"#),
        one("filterPEM-key", r#"{{ .key_and_cert | filterPEM "private key" }}"#),
        one("filterPEM-junk", r#"{{ .admin_password | filterPEM "CERTIFICATE" }}"#),
        one("filterCertChain", r#"{{ .chain_shuffled | filterCertChain "leaf" }}#{{ .chain_shuffled | filterCertChain "intermediate" }}#{{ .chain_shuffled | filterCertChain "root" }}"#),
        one("filterCertChain-root-only", r#"[{{ .cert | filterCertChain "root" }}][{{ .cert | filterCertChain "leaf" }}]"#),
        one("pemToPkcs12-roundtrip", "{{ pemToPkcs12 .cert .key | b64dec | pkcs12cert }}{{ pemToPkcs12 .cert .key | b64dec | pkcs12key }}"),
        one("pemToPkcs12-pkcs1-key", "{{ pemToPkcs12 .cert .key_pkcs1 | b64dec | pkcs12key }}"),
        one("pemToPkcs12Pass-roundtrip", r#"{{ pemToPkcs12Pass .cert .key "pw" | b64dec | pkcs12keyPass "pw" }}"#),
        one("fullPemToPkcs12-roundtrip", "{{ fullPemToPkcs12 .chain .key | b64dec | pkcs12cert }}"),
        one("fullPemToPkcs12Pass-roundtrip", r#"{{ fullPemToPkcs12Pass .chain .key "pw" | b64dec | pkcs12certPass "pw" }}"#),
        one("pemToPkcs12-ec", "{{ pemToPkcs12 .ec_cert .ec_key | b64dec | pkcs12key }}"),
        one("jwk-rsa", "{{ .rsa_pub_jwk | jwkPublicKeyPem }}{{ .rsa_jwk | jwkPrivateKeyPem }}"),
        one("jwk-ec", "{{ .ec_pub_jwk | jwkPublicKeyPem }}{{ .ec_jwk | jwkPrivateKeyPem }}"),
        one("jwk-ed25519", "{{ .ed_jwk | jwkPrivateKeyPem }}"),
        one("jwk-invalid", "{{ .admin_password | jwkPublicKeyPem }}"),
        ("keys-and-values", "KeysAndValues", "Data", vec![("tpl", "user: admin\npass: \"{{ .admin_password }}\"\nport: 8080\nflag: true\n{{ range $i := until 2 }}k{{ $i }}: v{{ $i }}\n{{ end }}")]),
        ("keys-and-values-nested-errors", "KeysAndValues", "Data", vec![("tpl", "a:\n  b: c\n")]),
        ("values-to-labels", "Values", "Labels", vec![("app", "{{ .admin_password | sha256sum | trunc 8 }}"), ("team", "ops")]),
        ("values-to-annotations", "Values", "Annotations", vec![("note", "{{ index . \"my-key\" | upper }}")]),
        ("keys-and-values-to-annotations", "KeysAndValues", "Annotations", vec![("tpl", "a: x\nb: '{{ .admin_password }}'\n")]),
    ]
}

fn render_ours(r: &Renderer, scope: &str, target: &str, templates: &BTreeMap<String, String>, data: &BTreeMap<String, Vec<u8>>) -> Result<RenderedSecret, TemplateError> {
    let mut spec = TemplateSpec::default();
    if scope == "Values" && target == "Data" {
        spec.data = templates.clone();
    } else {
        let template_as = if scope == "Values" { TemplateScope::Values } else { TemplateScope::KeysAndValues };
        spec.template_from.push(TemplateFrom {
            source: TemplateSource::ConfigMap {
                name: "cases".into(),
                data: templates.clone(),
                items: templates.keys().map(|k| TemplateRef { key: k.clone(), template_as }).collect(),
            },
            target: TemplateTarget::parse(target).expect("target"),
            values_decoding_strategy: DecodingStrategy::None,
        });
    }
    r.render(&spec, data)
}

#[test]
fn conformance_with_eso_template_package() {
    let data = data();
    let table = cases();
    let cases: Vec<Case> = table
        .iter()
        .map(|(n, scope, target, t)| Case {
            name: (*n).to_owned(),
            scope,
            target,
            templates: t.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            data: data.clone(),
        })
        .collect();
    let results = run_oracle(&cases);
    assert_eq!(results.len(), cases.len());
    let renderer = Renderer::new(RendererConfig::default()).expect("renderer");
    let mut failures = Vec::new();
    let mut agreed_errors = 0;
    for (case, eso) in cases.iter().zip(&results) {
        assert_eq!(case.name, eso.name);
        // Volatile functions render differently on every call: compare their lengths only (the cases do).
        let ours = render_ours(&renderer, case.scope, case.target, &case.templates, &case.data);
        match (&eso.error, ours) {
            (Some(_), Err(_)) => agreed_errors += 1,
            (Some(e), Ok(_)) => failures.push(format!("{}: ESO fails ({e}) but Lockstep renders", case.name)),
            (None, Err(e)) => failures.push(format!("{}: ESO renders but Lockstep fails: {e}", case.name)),
            (None, Ok(got)) => {
                let want_data: BTreeMap<String, Vec<u8>> = eso
                    .data
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, B64.decode(v).expect("oracle base64")))
                    .collect();
                if want_data != got.data {
                    for (k, w) in &want_data {
                        let g = got.data.get(k);
                        if g != Some(w) {
                            failures.push(format!(
                                "{} [{k}]:\n  ESO:      {:?}\n  Lockstep: {:?}",
                                case.name,
                                String::from_utf8_lossy(w),
                                g.map(|g| String::from_utf8_lossy(g).into_owned())
                            ));
                        }
                    }
                    if want_data.len() != got.data.len() {
                        failures.push(format!("{}: key sets differ", case.name));
                    }
                }
                if eso.labels.clone().unwrap_or_default() != got.labels {
                    failures.push(format!("{}: labels ESO {:?} Lockstep {:?}", case.name, eso.labels, got.labels));
                }
                if eso.annotations.clone().unwrap_or_default() != got.annotations {
                    failures.push(format!("{}: annotations ESO {:?} Lockstep {:?}", case.name, eso.annotations, got.annotations));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ from ESO:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert!(agreed_errors >= 10, "expected the error cases to fail on both sides, got {agreed_errors}");
}

/// Where Lockstep is deliberately stricter than ESO: ESO renders these
/// (garbage or `<no value>`), Lockstep fails the render.
#[test]
fn deliberate_differences_from_eso() {
    let data = data();
    let cases: Vec<Case> = [
        ("b64dec-invalid", "{{ .admin_password | b64dec }}"),
        ("fromJson-invalid", "{{ fromJson .admin_password }}"),
        ("fromYaml-invalid", "{{ fromYaml \"a: [\" }}"),
        ("define-unsupported", "{{ define \"x\" }}y{{ end }}z"),
        ("getHostByName-removed", "{{ getHostByName \"localhost\" }}"),
    ]
    .into_iter()
    .map(|(n, t)| Case { name: n.into(), scope: "Values", target: "Data", templates: [("out".to_owned(), t.to_owned())].into(), data: data.clone() })
    .collect();
    let results = run_oracle(&cases);
    let renderer = Renderer::new(RendererConfig::default()).expect("renderer");
    for (case, eso) in cases.iter().zip(&results) {
        assert!(eso.error.is_none(), "{}: ESO v0.16.2 was expected to render this", case.name);
        let ours = render_ours(&renderer, case.scope, case.target, &case.templates, &case.data);
        let err = ours.expect_err(&case.name).to_string();
        assert!(!err.contains("s3cr3t"), "{}: error leaks a value: {err}", case.name);
    }
}

/// ESO faults Lockstep fixes: `jwkPublicKeyPem` of a private JWK fails in ESO
/// ("unsupported public key type"); Lockstep returns the public key, equal to
/// what ESO renders for the matching public JWK.
#[test]
fn public_key_of_private_jwk() {
    let data = data();
    let mk = |n: &str, t: &str| Case { name: n.into(), scope: "Values", target: "Data", templates: [("out".to_owned(), t.to_owned())].into(), data: data.clone() };
    let cases = vec![
        mk("rsa-private", "{{ .rsa_jwk | jwkPublicKeyPem }}"),
        mk("rsa-public", "{{ .rsa_pub_jwk | jwkPublicKeyPem }}"),
        mk("ec-private", "{{ .ec_jwk | jwkPublicKeyPem }}"),
        mk("ec-public", "{{ .ec_pub_jwk | jwkPublicKeyPem }}"),
    ];
    let eso = run_oracle(&cases);
    let renderer = Renderer::new(RendererConfig::default()).expect("renderer");
    for pair in [0, 2] {
        assert!(eso[pair].error.is_some(), "ESO v0.16.2 was expected to fail {}", cases[pair].name);
        let want = B64.decode(&eso[pair + 1].data.as_ref().expect("data")["out"]).expect("b64");
        let got = render_ours(&renderer, "Values", "Data", &cases[pair].templates, &data).expect("render");
        assert_eq!(got.data["out"], want, "{}", cases[pair].name);
    }
}
