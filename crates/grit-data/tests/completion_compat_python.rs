//! The compat box extractor against CPython's `re` itself: `tests/fixtures/completion/compat_regex_cases.jsonl` holds
//! what `re.finditer(r'\b\d+,\s*\d+,\s*\d+,\s*\d+\b', text)` found (byte spans and `int()`
//! values) on random strings rich in the characters where Python's and Rust's regex classes
//! differ. Regenerate with `tools/fixtures/compat_regex_cases.py`.

use grit_data::completion::{Segments, compat_boxes};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    boxes: Vec<(usize, usize, [f64; 4])>,
}

#[test]
fn compat_boxes_match_python_re() {
    let cases = include_str!("../../../tests/fixtures/completion/compat_regex_cases.jsonl");
    let mut found = 0;
    for line in cases.lines() {
        let case: Case = serde_json::from_str(line).unwrap();
        let ours: Vec<(usize, usize, [f64; 4])> = compat_boxes(&case.text, &Segments::default())
            .iter()
            .map(|b| (b.span.start, b.span.end, b.coords))
            .collect();
        assert_eq!(ours, case.boxes, "text {:?}", case.text);
        found += ours.len();
    }
    // Guards against a fixture that stopped exercising anything.
    assert!(found > 100, "only {found} boxes in the fixture");
}
