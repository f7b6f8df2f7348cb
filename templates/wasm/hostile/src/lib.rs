//! Hostile template functions for sandbox tests (never shipped):
//! `spin` loops forever, `hog` allocates without bound, `trap` aborts,
//! `echo` returns its first argument (proves the instance still works).

wit_bindgen::generate!({
    path: "../../../wit/template-functions",
    world: "template-functions",
});

use exports::lockstep::template_functions::functions::{FunctionInfo, Guest};

struct Component;

fn info(name: &str) -> FunctionInfo {
    FunctionInfo { name: name.into(), description: format!("hostile: {name}"), volatile: false }
}

impl Guest for Component {
    fn list_functions() -> Vec<FunctionInfo> {
        vec![info("spin"), info("hog"), info("trap"), info("echo")]
    }

    fn call(name: String, args: Vec<String>) -> Result<String, String> {
        match name.as_str() {
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "hog" => {
                let mut keep: Vec<Vec<u8>> = Vec::new();
                loop {
                    keep.push(vec![0xA5; 1 << 20]);
                    std::hint::black_box(&keep);
                }
            }
            "trap" => std::process::abort(),
            "echo" => Ok(args.into_iter().next().unwrap_or_else(|| "null".into())),
            other => Err(format!("unknown function {other:?}")),
        }
    }
}

export!(Component);
