//! The README's first code block is what a newcomer runs on a fresh clone: its first command
//! must name one binary and start the main job, and its second must be what CI runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The commands of the README's first code block, comments stripped.
fn first_block() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    readme
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| l.split('#').next().unwrap().trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The binaries cargo knows for a package: `[[bin]]` entries, `src/main.rs` and `src/bin/*.rs`.
fn binaries(manifest: &Path) -> (Vec<String>, Option<String>) {
    let text = std::fs::read_to_string(manifest).unwrap();
    let toml: toml::Value = toml::from_str(&text).unwrap();
    let package = &toml["package"];
    let name = package["name"].as_str().unwrap().to_owned();
    let mut bins: Vec<String> = toml
        .get("bin")
        .and_then(|b| b.as_array())
        .map(|bins| {
            bins.iter()
                .map(|b| b["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let dir = manifest.parent().unwrap();
    if dir.join("src/main.rs").is_file() && !bins.contains(&name) {
        bins.push(name);
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("src/bin")) {
        for entry in entries {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.extension().is_some_and(|e| e == "rs") && !bins.contains(&stem) {
                bins.push(stem);
            }
        }
    }
    let default_run = package
        .get("default-run")
        .and_then(|d| d.as_str())
        .map(str::to_owned);
    (bins, default_run)
}

fn manifest_of(package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.push(root().join("app"));
    dirs.into_iter()
        .map(|d| d.join("Cargo.toml"))
        .find(|m| {
            std::fs::read_to_string(m).is_ok_and(|t| t.contains(&format!("name = \"{package}\"")))
        })
        .unwrap_or_else(|| panic!("no package {package}"))
}

#[test]
fn the_first_command_names_one_binary_and_starts_the_demo() {
    let commands = first_block();
    let first = &commands[0];
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(&words[..2], ["cargo", "run"], "{first}");
    assert!(
        !words.contains(&"--"),
        "the first command takes no arguments: {first}"
    );
    let package = words[words.iter().position(|&w| w == "-p").unwrap() + 1];
    let chosen = match words.iter().position(|&w| w == "--bin") {
        Some(i) => words[i + 1].to_owned(),
        None => {
            let (bins, default_run) = binaries(&manifest_of(package));
            match (bins.as_slice(), default_run) {
                ([only], _) => only.clone(),
                (_, Some(default)) if bins.contains(&default) => default,
                _ => panic!("`{first}` cannot choose among {bins:?}: give {package} a default-run"),
            }
        }
    };
    assert_eq!(chosen, "grit-train");

    // What that command runs, with no arguments, in a fresh directory: the demo starts (data,
    // tokenizer, model, the first warm-start steps) in the run directory the README names.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_grit-train"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sft_log = dir.path().join("runs/shapes-tiny/demo/sft_metrics.jsonl");
    let started = Instant::now();
    let progressed = loop {
        if std::fs::read_to_string(&sft_log).is_ok_and(|t| t.lines().count() >= 2) {
            break true;
        }
        if child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(600) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(progressed, "the demo did not reach its warm-start steps");
    assert!(
        dir.path()
            .join("runs/shapes-tiny/demo/data/train.jsonl")
            .is_file()
    );
}

#[test]
fn the_second_command_is_what_ci_runs() {
    let commands = first_block();
    assert_eq!(commands[1], "cargo test --workspace --all-features");
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == commands[1]),
        ".ci/run does not run `{}`",
        commands[1]
    );
}
