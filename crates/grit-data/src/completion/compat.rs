//! The official box counter, reproduced: `re.findall(r'\b\d+,\s*\d+,\s*\d+,\s*\d+\b', text)`.
//!
//! The official code runs that regex on Python `str`, where the classes are Unicode-aware. To
//! count what it counted, this module matches Python `re` rather than Rust `regex` defaults:
//!
//! | Python `re` (str pattern)            | Rust `regex` default        | used here                       |
//! |--------------------------------------|-----------------------------|---------------------------------|
//! | `\d` = Unicode `Nd`                  | `\d` = `Nd` (same)          | `\p{Nd}`                        |
//! | `\w` = `str.isalnum()` or `_`        | `\w` adds marks, `Pc`, …    | `[\p{L}\p{N}_]`                 |
//! | `\s` = `str.isspace()`               | `\s` lacks U+001C–U+001F    | `[\s\x1C-\x1F]`                 |
//!
//! These classes were checked against CPython 3.11 over every code point: they agree except
//! for code points that CPython's Unicode 14 tables leave unassigned and the `regex` crate's
//! newer tables assign (e.g. new digit blocks). Rust's own `\b` differs from Python's around
//! combining marks (`1, 2, 3, 4\u{301}` matches in Python, not with Rust's `\b`) and numeric
//! symbols (`²1, 2, 3, 4` matches with Rust's `\b`, not in Python), hence the explicit classes.
//!
//! So the digits may be any Unicode decimal digits (`١, ٢, ٣, ٤` is a box, as in Python, and its
//! coordinates are 1, 2, 3, 4 as Python's `int()` reads them). What the regex does with other
//! numbers follows from `\b` and the commas, and is kept on purpose:
//!
//! - floats: `1.5, 2, 3, 4` matches `5, 2, 3, 4` (the `.` is a boundary); `1, 2, 3, 4.5`
//!   matches `1, 2, 3, 4`; `0.5, 0.2, 0.3, 0.4` matches nothing (`5, 0.2` is no match);
//! - negatives: `-1, 2, 3, 4` matches `1, 2, 3, 4` (the sign is ignored); `1, -2, 3, 4` nothing;
//! - a space before a comma (`1 , 2, 3, 4`) breaks the match;
//! - a run of integers is cut into consecutive groups of four: eight integers are two boxes,
//!   nine are two boxes, five are one box; duplicates count twice.
//!
//! Rust's `regex` has no look-behind, so the boundaries are matched as characters: a non-word
//! character (or the start / end of the text) on each side. The box is the inner capture, and
//! the next search starts right after it, so the trailing boundary character can lead the next
//! match exactly as in Python's `findall`.

use super::{Region, Segments, Span};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// The regex of the official reward code, verbatim (Python syntax and semantics). Documentation
/// of what [`compat_boxes`] reproduces; it is not compiled as is.
pub const OFFICIAL_BOX_REGEX: &str = r"\b\d+,\s*\d+,\s*\d+,\s*\d+\b";

/// [`OFFICIAL_BOX_REGEX`] with Python's classes spelled out and `\b` matched as a character.
static COMPAT_BOX: LazyLock<Regex> = LazyLock::new(|| {
    const NUMBER: &str = r"(\p{Nd}+)";
    const SPACE: &str = r"[\s\x1C-\x1F]*";
    const NOT_WORD: &str = r"[^\p{L}\p{N}_]";
    let pattern = format!(
        "(?:^|{NOT_WORD}){NUMBER},{SPACE}{NUMBER},{SPACE}{NUMBER},{SPACE}{NUMBER}(?:{NOT_WORD}|$)"
    );
    Regex::new(&pattern).expect("the compat box pattern is valid")
});

static DECIMAL_DIGIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\p{Nd}$").expect("the digit pattern is valid"));

/// A box as the official regex finds it: four non-negative integers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompatBox {
    /// The regex match, from the first digit to the last.
    pub span: Span,
    pub region: Region,
    /// `[x1, y1, x2, y2]` as written. Exact up to 2^53; larger values round, and values beyond
    /// `f64` saturate at `f64::MAX` (Python's integers are unbounded, but no image is that big).
    pub coords: [f64; 4],
}

/// Every box the official regex finds, in text order. The official grounded reward counts
/// those in the text before the first `<rethink>`: no match crosses a `<`, so that count is the
/// number of these boxes whose span ends at or before that tag.
pub fn compat_boxes(text: &str, segments: &Segments) -> Vec<CompatBox> {
    let mut boxes = Vec::new();
    let mut locations = COMPAT_BOX.capture_locations();
    let mut from = 0;
    while COMPAT_BOX
        .captures_read_at(&mut locations, text, from)
        .is_some()
    {
        let number = |i: usize| locations.get(i).expect("every number group takes part");
        let (start, _) = number(1);
        let (_, end) = number(4);
        let coords = [1, 2, 3, 4].map(|i| {
            let (s, e) = number(i);
            decimal_value(&text[s..e])
        });
        boxes.push(CompatBox {
            span: Span::new(start, end),
            region: segments.region_at(start),
            coords,
        });
        from = end;
    }
    boxes
}

/// The value of a run of Unicode decimal digits, as Python's `int()` reads it.
fn decimal_value(digits: &str) -> f64 {
    let value = digits.chars().fold(0.0, |value: f64, c| {
        value * 10.0 + f64::from(digit_value(c))
    });
    value.min(f64::MAX)
}

/// The value of one `Nd` character. Unicode encodes decimal digits only in contiguous runs of
/// ten, zero to nine (a stability guarantee), so a digit's value is its distance from the start
/// of its run of `Nd` characters modulo ten (adjacent sets such as the mathematical digits
/// U+1D7CE–U+1D7FF form longer runs whose length is a multiple of ten).
pub(crate) fn digit_value(c: char) -> u32 {
    if let Some(d) = c.to_digit(10) {
        return d;
    }
    let is_digit = |code: u32| {
        let mut buf = [0; 4];
        char::from_u32(code).is_some_and(|c| DECIMAL_DIGIT.is_match(c.encode_utf8(&mut buf)))
    };
    let code = u32::from(c);
    let run_start = (0..code)
        .rev()
        .take_while(|&prev| is_digit(prev))
        .last()
        .unwrap_or(code);
    (code - run_start) % 10
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(text: &str) -> Vec<&str> {
        compat_boxes(text, &Segments::default())
            .iter()
            .map(|b| &text[b.span.range()])
            .collect()
    }

    /// Expected values produced with CPython 3.11:
    /// `[m.group() for m in re.finditer(r'\b\d+,\s*\d+,\s*\d+,\s*\d+\b', text)]`.
    #[test]
    fn agrees_with_python_re() {
        let cases: &[(&str, &[&str])] = &[
            ("[1, 2, 3, 4]", &["1, 2, 3, 4"]),
            ("[[1,2,3,4],[5,6,7,8]]", &["1,2,3,4", "5,6,7,8"]),
            ("1,2,3,4,5,6,7,8", &["1,2,3,4", "5,6,7,8"]),
            ("1, 2, 3, 4, 5, 6, 7, 8, 9", &["1, 2, 3, 4", "5, 6, 7, 8"]),
            ("1,2,3,4,5", &["1,2,3,4"]),
            ("1,2,3,4 5,6,7,8", &["1,2,3,4", "5,6,7,8"]),
            ("1.5, 2, 3, 4", &["5, 2, 3, 4"]),
            ("1, 2, 3, 4.5", &["1, 2, 3, 4"]),
            ("0.5, 0.2, 0.3, 0.4", &[]),
            ("1.5, 2.5, 3.5, 4.5, 5.5", &[]),
            ("-1, 2, 3, 4", &["1, 2, 3, 4"]),
            ("1, -2, 3, 4", &[]),
            ("1 , 2, 3, 4", &[]),
            ("1,\n2, 3,\n 4", &["1,\n2, 3,\n 4"]),
            ("a1, 2, 3, 4", &[]),
            ("1, 2, 3, 4x", &[]),
            ("_1, 2, 3, 4", &[]),
            ("1, 2, 3, 4_", &[]),
            ("x1, 2, 3, 4, 5", &["2, 3, 4, 5"]),
            ("1, 2, 3, 44x 5, 6, 7, 8", &["5, 6, 7, 8"]),
            ("é1, 2, 3, 4", &[]),
            ("²1, 2, 3, 4", &[]),
            ("1, 2, 3, 4²", &[]),
            ("1, 2, 3, 4\u{301}", &["1, 2, 3, 4"]),
            ("1\u{1c}, 2, 3, 4", &[]),
            ("1,\u{1c}2, 3, 4", &["1,\u{1c}2, 3, 4"]),
            ("1,\u{a0}2,3,4", &["1,\u{a0}2,3,4"]),
            ("١, ٢, ٣, ٤", &["١, ٢, ٣, ٤"]),
            ("１, ２, ３, ４", &["１, ２, ３, ４"]),
        ];
        for (text, expected) in cases {
            assert_eq!(&matches(text), expected, "text {text:?}");
        }
    }

    #[test]
    fn coordinates_of_unicode_digits_read_like_python_int() {
        let boxes = compat_boxes("١٢, ٣, ٤, ٥ and 𝟏𝟗, 𝟘, 𝟡, 𝟿", &Segments::default());
        assert_eq!(boxes.len(), 2);
        assert_eq!(boxes[0].coords, [12.0, 3.0, 4.0, 5.0]);
        // Bold, double-struck and monospace mathematical digits sit in one run of fifty.
        assert_eq!(boxes[1].coords, [19.0, 0.0, 9.0, 9.0]);
    }

    #[test]
    fn huge_integers_saturate() {
        let text = format!("{}, 1, 2, 3", "9".repeat(400));
        let boxes = compat_boxes(&text, &Segments::default());
        assert_eq!(boxes[0].coords, [f64::MAX, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn regions_follow_the_segments() {
        let text = "<think> 1, 2, 3, 4 </think><rethink> 5, 6, 7, 8 </rethink> 9, 9, 9, 9";
        let segments = Segments::parse(text);
        let regions: Vec<_> = compat_boxes(text, &segments)
            .iter()
            .map(|b| b.region)
            .collect();
        assert_eq!(regions, [Region::Think, Region::Rethink, Region::Outside]);
    }

    #[test]
    fn counting_before_the_first_rethink_equals_counting_the_prefix() {
        let text = "<think> 1,2,3,4 [5, 6, 7, 8]</think><rethink> 9, 9, 9, 9 </rethink>";
        let cut = text.find("<rethink>").unwrap();
        let all = compat_boxes(text, &Segments::default());
        let prefix = compat_boxes(&text[..cut], &Segments::default());
        assert_eq!(
            all.iter().filter(|b| b.span.end <= cut).count(),
            prefix.len()
        );
        assert_eq!(prefix.len(), 2);
    }
}
