//! `bleu_score_reward`: 0.1 × unigram BLEU of the answer against the reference, in [0, 0.1].
//!
//! The official function calls NLTK's `sentence_bleu([reference], hypothesis,
//! weights=(1, 0, 0, 0))` with no smoothing. With those weights the higher orders contribute
//! `0 × log(p_n)` (NLTK's `method0` replaces a zero precision by the smallest float, so the
//! product is 0, never NaN), and the score is
//!
//! - 0 when no hypothesis word occurs in the reference (NLTK returns 0 when the unigram
//!   numerator is 0, which also covers an empty hypothesis);
//! - otherwise `p1 × BP`, with `p1` = Σ min(count in hypothesis, count in reference) / len(hyp)
//!   (clipped unigram precision) and `BP` = 1 if len(hyp) > len(ref), else
//!   exp(1 − len(ref)/len(hyp)).
//!
//! Both texts: every character but ASCII letters, ASCII digits and whitespace becomes a space,
//! then lower-case and Python `str.split()`.
//!
//! The hypothesis: compat takes everything after the first `<answer>`, so `</answer>` (and
//! whatever follows it) is scored too, `</answer>` as the word "answer"; fixed takes the text
//! up to the first `</answer>` after it. Without `<answer>` the reward is 0 in both modes.

use super::{Mode, python};
use std::collections::HashMap;

/// The reward's scale: 0.1 × BLEU.
pub const BLEU_MAX_REWARD: f64 = 0.1;

/// `bleu_score_reward` of one completion against the reference answer.
pub fn bleu_score_reward(mode: Mode, text: &str, reference: &str) -> f64 {
    let Some(at) = text.find("<answer>") else {
        return 0.0;
    };
    let after = &text[at + "<answer>".len()..];
    let hypothesis = match mode {
        Mode::Compat => after,
        Mode::Fixed => after.find("</answer>").map_or(after, |end| &after[..end]),
    };
    BLEU_MAX_REWARD * unigram_bleu(&words(reference), &words(hypothesis))
}

fn words(text: &str) -> Vec<String> {
    let cleaned = python::ascii_alnum_or_space(text).to_ascii_lowercase();
    python::split(&cleaned)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// NLTK's `sentence_bleu([reference], hypothesis, weights=(1, 0, 0, 0))`.
pub fn unigram_bleu<S: AsRef<str>>(reference: &[S], hypothesis: &[S]) -> f64 {
    let mut available: HashMap<&str, usize> = HashMap::new();
    for word in reference {
        *available.entry(word.as_ref()).or_default() += 1;
    }
    let mut used: HashMap<&str, usize> = HashMap::new();
    let mut matched = 0usize;
    for word in hypothesis {
        let word = word.as_ref();
        let seen = used.entry(word).or_default();
        *seen += 1;
        if *seen <= available.get(word).copied().unwrap_or(0) {
            matched += 1;
        }
    }
    if matched == 0 {
        return 0.0;
    }
    let (c, r) = (hypothesis.len() as f64, reference.len() as f64);
    let brevity_penalty = if c > r { 1.0 } else { (1.0 - r / c).exp() };
    // As NLTK computes it, `bp · exp(Σ w·log p)`, so results agree to the last bit.
    let precision = matched as f64 / c;
    brevity_penalty * precision.ln().exp()
}
