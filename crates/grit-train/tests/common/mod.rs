//! What the end-to-end trainer tests share.

// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `command` and requires success; a failure shows the command and its stderr.
pub fn succeed(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// [`succeed`] for `program args`: its stdout, then its stderr.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = succeed(Command::new(program).args(args));
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// Every line of a JSONL file the test expects to exist.
pub fn read_rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The `[demo]` model sizes of a miniature demo run: a model that trains in well under a second
/// a step, big enough to exercise every part (GQA, a vision block, a tied head).
pub const MINIATURE_MODEL: &str = "vocab_size = 300
hidden_size = 32
intermediate_size = 64
layers = 1
heads = 2
kv_heads = 1
vision_hidden_size = 16
vision_depth = 1
vision_heads = 2";
