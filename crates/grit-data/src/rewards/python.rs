//! The few Python `str` behaviours the official reward code relies on, reproduced.
//!
//! - `str.isspace()` is Rust's `char::is_whitespace` plus U+001C–U+001F (the information
//!   separators, which Python counts as whitespace and Unicode's `White_Space` does not);
//!   `str.split()` and `str.strip()` use it.
//! - `int(s)` accepts surrounding whitespace, one sign, Unicode decimal digits and single
//!   underscores between digits.
//! - `re.sub(r'[^a-zA-Z0-9\s]', ' ', s)` keeps ASCII letters and digits and Python whitespace.

use crate::completion::digit_value;

/// Python's `str.isspace()` for one character.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument: runs of whitespace separate, no empty pieces.
pub(crate) fn split(s: &str) -> Vec<&str> {
    s.split(is_space).filter(|w| !w.is_empty()).collect()
}

/// Python's `str.strip()` with no argument.
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `re.sub(r'[^a-zA-Z0-9\s]', ' ', s)`: everything but ASCII letters, ASCII digits and
/// whitespace becomes a space (one space per code point, as Python substitutes per match).
pub(crate) fn ascii_alnum_or_space(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || is_space(c) {
                c
            } else {
                ' '
            }
        })
        .collect()
}

/// Whether a character is a Unicode decimal digit (`Nd`), Python's `\d` and what `int()` reads.
pub(crate) fn is_decimal(c: char) -> bool {
    // Every `Nd` character is numeric; `digit_value` alone cannot tell, so check the category
    // through the box regex's digit class.
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric() && is_nd(c))
}

fn is_nd(c: char) -> bool {
    use regex::Regex;
    use std::sync::LazyLock;
    static ND: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\p{Nd}$").expect("valid"));
    let mut buf = [0; 4];
    ND.is_match(c.encode_utf8(&mut buf))
}

/// The ASCII digit of a Unicode decimal digit.
pub(crate) fn ascii_digit(c: char) -> char {
    char::from_digit(digit_value(c), 10).expect("a digit value is below ten")
}

/// The outcome of Python's `int(s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PyInt {
    /// A valid integer that fits in `i128`.
    Value(i128),
    /// A valid integer beyond `i128` (Python's integers are unbounded). It equals no box count.
    Huge,
}

/// Python's `int(s)` (base 10); `None` where Python raises `ValueError`.
pub(crate) fn int(s: &str) -> Option<PyInt> {
    let s = strip(s);
    let (negative, digits) = match s.chars().next()? {
        '+' => (false, &s[1..]),
        '-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') {
        return None;
    }
    let mut value: Option<i128> = Some(0);
    let mut previous_underscore = false;
    for c in digits.chars() {
        if c == '_' {
            if previous_underscore {
                return None;
            }
            previous_underscore = true;
            continue;
        }
        previous_underscore = false;
        if !is_decimal(c) {
            return None;
        }
        let d = i128::from(digit_value(c));
        value = value
            .and_then(|v| v.checked_mul(10))
            .and_then(|v| v.checked_add(d));
    }
    Some(match value {
        Some(v) if negative => PyInt::Value(-v),
        Some(v) => PyInt::Value(v),
        None => PyInt::Huge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_follows_python() {
        assert_eq!(int(" 2 "), Some(PyInt::Value(2)));
        assert_eq!(int("+3"), Some(PyInt::Value(3)));
        assert_eq!(int("-1"), Some(PyInt::Value(-1)));
        assert_eq!(int("1_0"), Some(PyInt::Value(10)));
        assert_eq!(int("٣"), Some(PyInt::Value(3)));
        assert_eq!(int(&"9".repeat(60)), Some(PyInt::Huge));
        for bad in [
            "", " ", "2.0", "two", "1__0", "_1", "1_", "+", "1 2", "0x1", "²",
        ] {
            assert_eq!(int(bad), None, "int({bad:?})");
        }
    }

    #[test]
    fn split_and_strip_use_python_whitespace() {
        assert_eq!(split(" a\u{1c}b \u{a0}c "), ["a", "b", "c"]);
        assert_eq!(strip("\u{1f} x \n"), "x");
        assert_eq!(ascii_alnum_or_space("a,b-é 1"), "a b   1");
    }
}
