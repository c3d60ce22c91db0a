//! `grit data check` on `tests/fixtures/data_check`, whose `data.jsonl` has planted problems
//! (see `make_fixtures.py` there).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/data_check")
}

fn grit(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grit"))
        .args(args)
        .output()
        .expect("run grit")
}

fn check(file: &Path, images: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["data".as_ref(), "check".as_ref(), file.as_ref()];
    args.push("--images".as_ref());
    args.push(images.as_ref());
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    grit(&args)
}

#[test]
fn every_planted_problem_is_reported_with_its_line() {
    let file = fixtures().join("data.jsonl");
    let out = check(&file, &fixtures().join("images"), &[]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let file = file.display();
    let expected = [
        format!("{file}:3: malformed line: EOF while parsing a value (column 38)"),
        format!("{file}:4: missing image: "),
        format!("{file}:5: box outside image: box 0 [2, 2, 9, 5] outside the 8×6 image"),
        format!("{file}:6: inverted box: box 0 [5, 1, 2, 3]: x2 < x1"),
        format!("{file}:7: size mismatch: width×height 10×6 but "),
    ];
    let problems: Vec<&str> = stdout.lines().filter(|l| l.contains(".jsonl:")).collect();
    assert_eq!(problems.len(), expected.len(), "{stdout}");
    for (line, want) in problems.iter().zip(&expected) {
        assert!(
            line.starts_with(want.as_str()),
            "{line:?} should start with {want:?}"
        );
    }
    assert!(
        problems[1].ends_with("missing.png: no such file"),
        "{stdout}"
    );
    assert!(problems[4].ends_with("cat.png is 8×6"), "{stdout}");
    assert!(
        stdout.contains("1 file(s), 8 line(s), 7 sample(s), 2 image(s) read: 5 problem(s)"),
        "{stdout}"
    );
    for count in [
        "  malformed line: 1",
        "  missing image: 1",
        "  inverted box: 1",
        "  box outside image: 1",
        "  size mismatch: 1",
    ] {
        assert!(stdout.lines().any(|l| l == count), "{count:?} in {stdout}");
    }
}

#[test]
fn full_decode_and_json_agree() {
    let out = check(
        &fixtures().join("data.jsonl"),
        &fixtures().join("images"),
        &["--decode", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines: Vec<u64> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["at"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4, 5, 6, 7]);
    assert_eq!(report["counts"]["malformed_line"], 1);
}

#[test]
fn clean_data_passes() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixtures().join("data.jsonl")).unwrap();
    let good: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| [0, 1, 7].contains(i))
        .map(|(_, l)| l)
        .collect();
    let file = dir.path().join("good.jsonl");
    std::fs::write(&file, good.join("\n")).unwrap();
    let out = check(&file, &fixtures().join("images"), &[]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("3 sample(s), 2 image(s) read: 0 problem(s)"),
        "{stdout}"
    );
}

#[test]
fn mismatched_folder_count_is_an_error() {
    let data = fixtures().join("data.jsonl");
    let images = fixtures().join("images");
    let out = grit(&[
        "data".as_ref(),
        "check".as_ref(),
        data.as_ref(),
        data.as_ref(),
        data.as_ref(),
        "--images".as_ref(),
        images.as_ref(),
        images.as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("3 data files but 2 image folders"),
        "{stderr}"
    );
}
