//! `grit rewards` on `tests/fixtures/rewards/sample.jsonl`, in both modes.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/rewards/sample.jsonl")
}

fn audit(mode: &str, file: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_grit"))
        .args(["rewards", "--mode", mode])
        .arg(file)
        .output()
        .expect("grit runs");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const AF: &str = "answer_format_reward";
const TF: &str = "think_and_rethink_format_reward";
const GR: &str = "grounded_region_specific_thinking_format_reward_think_rethink";
const BL: &str = "bleu_score_reward";
const RP: &str = "repetitive_reward";
const JS: &str = "judge_score";

/// A number, or `E` for `{"error": ...}`, or `N` for absent.
#[derive(Debug, Clone, Copy)]
enum V {
    F(f64),
    E,
    N,
}
use V::{E, F, N};

fn check(row: &Value, key: &str, expected: V, line: usize) {
    let actual = row.get(key);
    match expected {
        F(x) => {
            let got = actual.and_then(Value::as_f64);
            assert!(
                got.is_some_and(|g| (g - x).abs() < 1e-12),
                "line {line} {key}: {actual:?} != {x}"
            );
        }
        E => assert!(
            actual
                .and_then(|v| v.get("error"))
                .is_some_and(Value::is_string),
            "line {line} {key}: {actual:?} is no error"
        ),
        N => assert!(actual.is_none(), "line {line} {key}: {actual:?} present"),
    }
}

/// Per line: answer format, think format, grounded, bleu, repetition, judge.
type Expected = [(f64, f64, V, V, V, V); 10];

const COMPAT: Expected = [
    (0.5, 0.5, F(1.5), F(0.05), F(0.5), N),
    (0.5, 0.4, F(0.0), F(0.05), F(0.5), N),
    (0.25, 0.4, F(0.0), F(0.1 / 3.0), F(0.5), N),
    (0.5, 0.4, F(1.0), F(0.05), F(0.5), N),
    (0.0, 0.0, F(0.0), F(0.0), F(0.5), N),
    (0.0, 0.0, F(0.0), F(0.0), F(-17.0 / 48.0), N),
    (0.5, 0.5, F(0.0), F(0.05), F(0.5), F(11.0)),
    (0.5, 0.5, E, F(0.05), E, N),
    (0.5, 0.0, F(0.0), F(0.08), F(0.5), F(0.0)),
    (0.5, 0.0, F(0.0), F(0.0), F(0.5), F(0.0)),
];

const FIXED: Expected = [
    (0.5, 0.5, F(1.5), F(0.1), F(0.5), N),
    (0.5, 0.4, F(0.0), F(0.1), F(0.5), N),
    (0.25, 0.4, F(0.0), F(0.1), F(0.5), N),
    (0.5, 0.4, F(1.0), F(0.1), F(0.5), N),
    (0.0, 0.0, F(0.0), F(0.0), F(0.0), N),
    (0.0, 0.0, F(0.0), F(0.0), F(-0.5), N),
    (0.5, 0.5, F(0.0), F(0.1), F(0.5), F(1.0)),
    (0.5, 0.5, F(0.5), F(0.1), E, N),
    (0.5, 0.0, F(0.0), F(0.1), F(0.5), F(0.0)),
    (0.5, 0.0, F(0.0), F(0.0), F(0.5), E),
];

#[test]
fn audits_the_sample_file_in_both_modes() {
    for (mode, expected) in [("compat", COMPAT), ("fixed", FIXED)] {
        let (ok, stdout, stderr) = audit(mode, &fixture());
        assert!(ok, "{mode}: {stderr}");
        let rows: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), expected.len(), "{mode}");
        for (i, (row, &(af, tf, gr, bl, rp, js))) in rows.iter().zip(&expected).enumerate() {
            let line = i + 1;
            assert_eq!(row["line"], line, "{mode}");
            check(row, AF, F(af), line);
            check(row, TF, F(tf), line);
            check(row, GR, gr, line);
            check(row, BL, bl, line);
            check(row, RP, rp, line);
            check(row, JS, js, line);
        }
    }
}

#[test]
fn a_malformed_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"completion\": \"\", \"answer\": \"1\", \"dataset\": \"vsr\"}\n\n{\"completion\": 3}\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = audit("compat", &file);
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("bad.jsonl:3:"), "{stderr}");
}
