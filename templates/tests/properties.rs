//! Property tests: rendering never panics; bytes survive the engine.

use std::collections::BTreeMap;

use lockstep_templates::*;
use proptest::prelude::*;

fn renderer() -> &'static Renderer {
    static R: std::sync::OnceLock<Renderer> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let config = RendererConfig { limits: Limits { fuel: 50_000, max_output_bytes: 64 << 10, ..Limits::default() }, ..Default::default() };
        Renderer::new(config).expect("renderer")
    })
}

fn one(syntax: Syntax, tpl: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, TemplateError> {
    let mut spec = TemplateSpec { syntax, ..Default::default() };
    spec.data.insert("out".into(), tpl.into());
    renderer().render(&spec, data).map(|mut r| r.data.remove("out").unwrap_or_default())
}

/// Template-ish text: fragments of Go-template syntax glued together.
fn template_text() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        Just("{{-".to_owned()),
        Just(" -}}".to_owned()),
        Just(".k".to_owned()),
        Just(" | ".to_owned()),
        Just("$x := ".to_owned()),
        Just("if ".to_owned()),
        Just("range ".to_owned()),
        Just("else".to_owned()),
        Just("end".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("\"s\"".to_owned()),
        Just("`r`".to_owned()),
        Just("b64dec".to_owned()),
        Just("index . \"k\"".to_owned()),
        Just("{%".to_owned()),
        Just("/*".to_owned()),
        Just("'".to_owned()),
        "[ -~]{0,6}",
        any::<String>().prop_map(|s| s.chars().take(4).collect()),
    ];
    prop::collection::vec(frag, 0..16).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rendering_never_panics(tpl in template_text(), k in prop::collection::vec(any::<u8>(), 0..32)) {
        let mut data = BTreeMap::new();
        data.insert("k".to_owned(), k);
        let _ = one(Syntax::GoTemplate, &tpl, &data);
        let _ = one(Syntax::Jinja, &tpl, &data);
    }

    #[test]
    fn arbitrary_text_never_panics(tpl in any::<String>()) {
        let _ = one(Syntax::GoTemplate, &tpl, &BTreeMap::new());
        let _ = one(Syntax::Jinja, &tpl, &BTreeMap::new());
    }

    #[test]
    fn bytes_round_trip(v in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut data = BTreeMap::new();
        data.insert("k".to_owned(), v.clone());
        prop_assert_eq!(&one(Syntax::GoTemplate, "{{ .k }}", &data).unwrap(), &v);
        prop_assert_eq!(&one(Syntax::GoTemplate, "{{ .k | b64enc | b64dec }}", &data).unwrap(), &v);
        prop_assert_eq!(&one(Syntax::Jinja, "{{ k }}", &data).unwrap(), &v);
        prop_assert_eq!(&one(Syntax::Jinja, "{{ k | b64enc | b64dec }}", &data).unwrap(), &v);
    }

    #[test]
    fn byte_mapping_is_reversible(v in prop::collection::vec(any::<u8>(), 0..512)) {
        prop_assert_eq!(lockstep_templates::bytes::decode(&lockstep_templates::bytes::encode(&v)), v);
    }
}
