//! Every command in the README and `docs/*.md` shell blocks (```sh) is run here, or
//! named below with the test that runs it, so documented commands cannot rot.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Commands documented but run elsewhere: (prefix, where).
const RUN_ELSEWHERE: &[(&str, &str)] = &[
    ("make demo", "engine/cli/tests/demo.rs runs the demo driver with this binary"),
    ("make test", ".ci/run is `make test`"),
    ("make components", "every `make test` starts with it"),
    ("make bench-scale", "tests/bench/tests/smoke.rs runs the bench command in --quick mode"),
];

/// Never printed without `--show-values`: the example values of examples/offline.
const EXAMPLE_VALUES: &[&str] = &["example-only"];

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn documented_commands() -> Vec<(String, String)> {
    let root = checkout();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "md")).collect();
    docs.sort();
    files.extend(docs);
    let mut commands = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        let mut in_sh = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(fence) = trimmed.strip_prefix("```") {
                in_sh = !in_sh && fence == "sh";
                continue;
            }
            if in_sh {
                let command = trimmed.split(" # ").next().unwrap().trim();
                if !command.is_empty() && !command.starts_with('#') {
                    commands.push((name.clone(), command.to_owned()));
                }
            }
        }
    }
    commands
}

#[test]
fn every_documented_command_runs() {
    let commands = documented_commands();
    assert!(commands.iter().any(|(_, c)| c.starts_with("lockstep plugin test")), "the docs lost their plugin examples: {commands:?}");
    let lockstep_dir = Path::new(env!("CARGO_BIN_EXE_lockstep")).parent().unwrap().to_path_buf();
    let helm_dir = lockstep_testenv::tools::Tools::from_cache().expect("tools (make tools)").helm.parent().unwrap().to_path_buf();
    let path = format!("{}:{}:{}", lockstep_dir.display(), helm_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut ran = 0;
    for (file, command) in &commands {
        if let Some((_, why)) = RUN_ELSEWHERE.iter().find(|(prefix, _)| command.starts_with(prefix)) {
            eprintln!("{file}: `{command}`: {why}");
            continue;
        }
        let program = command.split_whitespace().next().unwrap();
        assert!(
            program == "lockstep" || command.starts_with("helm template") || command.starts_with("helm lint"),
            "{file}: `{command}` is neither run here nor listed in RUN_ELSEWHERE"
        );
        let out = Command::new("bash").arg("-c").arg(command).current_dir(checkout()).env("PATH", &path).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{file}: `{command}` failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(!stdout.trim().is_empty(), "{file}: `{command}` printed nothing");
        if !command.contains("--show-values") {
            for value in EXAMPLE_VALUES {
                assert!(!stdout.contains(value), "{file}: `{command}` printed a secret value");
            }
        }
        ran += 1;
    }
    eprintln!("{ran} documented commands ran");
}

/// The README's seed diff is the real difference between `examples/seed/as-written/`
/// and `examples/seed/fixed/`: every removed line only in the former, every added line
/// only in the latter, and no other line differs.
#[test]
fn readme_seed_diff_matches_the_examples() {
    let root = checkout();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = readme.split("```diff\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a ```diff block in the README");
    let seed = root.join("examples/seed");
    let mut files_seen = Vec::new();
    let mut removed: Vec<(String, String)> = Vec::new();
    let mut added: Vec<(String, String)> = Vec::new();
    let mut file = String::new();
    for line in block.lines().filter(|l| !l.starts_with("--- ")) {
        if let Some(path) = line.strip_prefix("+++ fixed/") {
            file = path.to_owned();
            files_seen.push(file.clone());
        } else if let Some(l) = line.strip_prefix('-') {
            removed.push((file.clone(), l.to_owned()));
        } else if let Some(l) = line.strip_prefix('+') {
            added.push((file.clone(), l.to_owned()));
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(seed.join("fixed")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in names {
        let before = std::fs::read_to_string(seed.join("as-written").join(&name)).unwrap();
        let after = std::fs::read_to_string(seed.join("fixed").join(&name)).unwrap();
        let only_before: Vec<String> = before.lines().filter(|l| !after.lines().any(|a| a == *l)).map(str::to_owned).collect();
        let only_after: Vec<String> = after.lines().filter(|l| !before.lines().any(|b| b == *l)).map(str::to_owned).collect();
        let doc_removed: Vec<String> = removed.iter().filter(|(f, _)| *f == name).map(|(_, l)| l.clone()).collect();
        let doc_added: Vec<String> = added.iter().filter(|(f, _)| *f == name).map(|(_, l)| l.clone()).collect();
        assert_eq!(doc_removed, only_before, "{name}: README's removed lines");
        assert_eq!(doc_added, only_after, "{name}: README's added lines");
        assert_eq!(files_seen.contains(&name), !only_before.is_empty() || !only_after.is_empty(), "{name}: in the README diff iff it changed");
    }
}
