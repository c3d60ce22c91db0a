//! The two tag-format rewards.

use super::{Mode, python};

/// `answer_format_reward`: +1 if `<answer>` occurs, +1 more if it occurs exactly once
/// (`len(response.split("<answer>")) == 2`), times 0.25: {0, 0.25, 0.5}. The same in both
/// modes (the official function has no quirk to repair).
pub fn answer_format_reward(text: &str) -> f64 {
    let occurrences = text.matches("<answer>").count();
    let mut reward = 0.0;
    if occurrences > 0 {
        reward += 1.0;
    }
    if occurrences == 1 {
        reward += 1.0;
    }
    reward / 2.0 * 0.5
}

const THINK_KEYS: [&str; 4] = ["<think>", "</think>", "<rethink>", "</rethink>"];

/// `think_and_rethink_format_reward`, in [0, 0.5].
///
/// Scans `<think>`, `</think>`, `<rethink>`, `</rethink>` in that order: each key found in
/// what is left earns 1 and the scan continues after its *last* occurrence
/// (`response.split(key)[-1]`). With all four, the think body (the original text after the
/// last `<think>`, up to the next `</think>`) earns 1 more if it has two words. Total / 5 × 0.5.
///
/// The two-word test differs by mode:
/// - compat: the body, stripped, must have at least 2 characters; after non-ASCII-alphanumerics
///   become spaces, `split(' ')` (one space character) must give at least 2 pieces. So
///   `"a\nb"` fails (no space), and `"x ,"` passes (three pieces, one word).
/// - fixed: after the same substitution, at least two whitespace-separated words.
pub fn think_and_rethink_format_reward(mode: Mode, text: &str) -> f64 {
    let mut reward = 0.0;
    let mut rest = text;
    for key in THINK_KEYS {
        if let Some(at) = rest.rfind(key) {
            reward += 1.0;
            rest = &rest[at + key.len()..];
        }
    }
    if reward == THINK_KEYS.len() as f64 && think_body_has_two_words(mode, text) {
        reward += 1.0;
    }
    reward / (THINK_KEYS.len() as f64 + 1.0) * 0.5
}

fn think_body_has_two_words(mode: Mode, text: &str) -> bool {
    // `response_original.split("<think>")[-1].split("</think>")[0].strip()`
    let after = text
        .rfind("<think>")
        .map_or(text, |at| &text[at + "<think>".len()..]);
    let body = after.find("</think>").map_or(after, |at| &after[..at]);
    let body = python::strip(body);
    let cleaned = python::ascii_alnum_or_space(body);
    match mode {
        Mode::Compat => body.chars().count() > 1 && cleaned.split(' ').count() > 1,
        Mode::Fixed => python::split(&cleaned).len() >= 2,
    }
}
