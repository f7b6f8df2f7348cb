//! Function configuration: disabled, removed and overridden functions.

use std::collections::BTreeMap;
use std::sync::Arc;

use lockstep_templates::*;

fn render_with(config: &str, syntax: Syntax, tpl: &str) -> Result<String, TemplateError> {
    let functions: FunctionConfig = config.parse().expect("config");
    let r = Renderer::new(RendererConfig { functions, ..Default::default() }).expect("renderer");
    let mut spec = TemplateSpec { syntax, ..Default::default() };
    spec.data.insert("out".into(), tpl.into());
    let mut data = BTreeMap::new();
    data.insert("k".to_owned(), b"value".to_vec());
    r.render(&spec, &data).map(|mut o| String::from_utf8(o.data.remove("out").unwrap_or_default()).expect("utf-8"))
}

#[test]
fn disabled_function_fails_in_both_syntaxes() {
    for (syntax, tpl) in [(Syntax::GoTemplate, "{{ now }}"), (Syntax::Jinja, "{{ now() }}")] {
        let err = render_with("-sprig.now", syntax, tpl).unwrap_err().to_string();
        assert!(err.contains(r#"function "now" is not available"#), "{err}");
        assert!(err.contains("-sprig.now"), "{err}");
    }
    // Other sprig functions keep working.
    assert_eq!(render_with("-sprig.now", Syntax::GoTemplate, "{{ .k | upper }}").unwrap(), "VALUE");
}

#[test]
fn disabled_pack_names_the_pack() {
    let err = render_with("-eso", Syntax::GoTemplate, "{{ .k | toYaml }}").unwrap_err().to_string();
    assert!(err.contains(r#"function "toYaml" is not available (pack "eso" is disabled)"#), "{err}");
    let err = render_with("-sprig", Syntax::Jinja, "{{ k | b64enc }}").unwrap_err().to_string();
    assert!(err.contains(r#"function "b64enc" is not available (pack "sprig" is disabled)"#), "{err}");
    // A function re-enabled after its pack was disabled is callable.
    assert_eq!(render_with("-sprig,+sprig.upper", Syntax::GoTemplate, "{{ .k | upper }}").unwrap(), "VALUE");
    assert!(render_with("-sprig,+sprig.upper", Syntax::GoTemplate, "{{ .k | lower }}").is_err());
}

#[test]
fn removed_sprig_functions_are_not_available() {
    for (name, tpl) in [("env", r#"{{ env "HOME" }}"#), ("expandenv", r#"{{ expandenv "$HOME" }}"#), ("getHostByName", r#"{{ getHostByName "localhost" }}"#)] {
        let err = render_with("", Syntax::GoTemplate, tpl).unwrap_err().to_string();
        assert!(err.contains(&format!("function {name:?} is not available (removed")), "{err}");
    }
    let err = render_with("", Syntax::Jinja, r#"{{ env("HOME") }}"#).unwrap_err().to_string();
    assert!(err.contains(r#"function "env" is not available (removed"#), "{err}");
    // Enabling sprig again does not bring them back.
    assert!(render_with("+sprig", Syntax::GoTemplate, r#"{{ env "HOME" }}"#).is_err());
}

#[test]
fn unknown_function_names_position() {
    let err = render_with("", Syntax::GoTemplate, "line one\n  {{ nosuch 1 }}").unwrap_err().to_string();
    assert!(err.contains(r#"function "nosuch" not defined"#), "{err}");
    assert!(err.contains("2:6"), "{err}");
}

#[test]
fn binding_overrides_a_function() {
    assert_eq!(render_with("upper=sprig.lower", Syntax::GoTemplate, r#"{{ "ABC" | upper }}"#).unwrap(), "abc");
    assert_eq!(render_with("shout=sprig.upper", Syntax::Jinja, r#"{{ k | shout }}"#).unwrap(), "VALUE");
}

#[test]
fn bad_configuration_is_rejected() {
    for bad in ["-nosuchpack", "-sprig.nosuch", "x=sprig", "+", "-a.b.c"] {
        let parsed: Result<FunctionConfig, _> = bad.parse();
        let rejected = match parsed {
            Err(_) => true,
            Ok(functions) => Renderer::new(RendererConfig { functions, ..Default::default() }).is_err(),
        };
        assert!(rejected, "{bad:?} accepted");
    }
    let c: FunctionConfig = "-sprig.now, +eso ,b64dec=sprig.b64dec".parse().unwrap();
    assert_eq!(c.to_string(), "-sprig.now,+eso,b64dec=sprig.b64dec");
}

#[test]
fn volatile_functions_are_listed_as_such() {
    let r = Renderer::new(RendererConfig::default()).unwrap();
    let fns = r.functions();
    for name in ["now", "uuidv4", "randAlphaNum", "pemToPkcs12"] {
        assert!(fns.iter().any(|f| f.name == name && f.volatile), "{name} not volatile");
    }
    assert!(fns.iter().any(|f| f.name == "b64enc" && !f.volatile));
    assert!(!fns.iter().any(|f| f.name == "env"));
}

struct Upper;
impl ExternalFunctions for Upper {
    fn list(&self) -> Vec<FunctionInfo> {
        vec![FunctionInfo { name: "shout".into(), description: "upper-case".into(), volatile: false }, FunctionInfo { name: "boom".into(), description: "fails".into(), volatile: false }]
    }
    fn call(&self, name: &str, args: Vec<serde_json::Value>) -> Result<serde_json::Value, String> {
        match name {
            "shout" => Ok(serde_json::Value::String(args.iter().map(|a| a.as_str().unwrap_or_default().to_uppercase()).collect::<Vec<_>>().join(" "))),
            _ => Err("deliberate failure".into()),
        }
    }
}

#[test]
fn external_functions_under_a_prefix() {
    let external = vec![ExternalPack { pack: "ext".into(), prefix: "x_".into(), functions: Arc::new(Upper) }];
    let r = Renderer::new(RendererConfig { external: external.clone(), ..Default::default() }).unwrap();
    let mut data = BTreeMap::new();
    data.insert("k".to_owned(), b"value".to_vec());
    for (syntax, tpl) in [(Syntax::GoTemplate, "{{ .k | x_shout }}"), (Syntax::Jinja, "{{ k | x_shout }}"), (Syntax::Jinja, "{{ x_shout(k) }}")] {
        let mut spec = TemplateSpec { syntax, ..Default::default() };
        spec.data.insert("out".into(), tpl.into());
        assert_eq!(r.render(&spec, &data).unwrap().data["out"], b"VALUE");
    }
    let mut spec = TemplateSpec::default();
    spec.data.insert("out".into(), "{{ x_boom }}".into());
    let err = r.render(&spec, &data).unwrap_err().to_string();
    assert!(err.contains("error calling x_boom: deliberate failure"), "{err}");
    // External packs are configured like the built-in ones.
    let functions: FunctionConfig = "-ext.shout".parse().unwrap();
    let r = Renderer::new(RendererConfig { external, functions, ..Default::default() }).unwrap();
    spec.data.insert("out".into(), "{{ x_shout .k }}".into());
    let err = r.render(&spec, &data).unwrap_err().to_string();
    assert!(err.contains(r#"function "x_shout" is not available"#), "{err}");
}
