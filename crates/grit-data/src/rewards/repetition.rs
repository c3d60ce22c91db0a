//! `repetitive_reward`: penalizes a completion that repeats itself, in [−0.5, 0.5].
//!
//! Reconstructed from the official function (eric-ai-lab/GRIT `grpo-gr/rewards.py`), compat:
//!
//! 1. An empty completion (`completion == ""`) gets 0.5.
//! 2. Fewer than 8 words (Python `str.split()`, case kept) gets 0.5.
//! 3. Word score: for `i in range(len(words) - 8)`, the 8-gram at `i` is compared with the
//!    words at `i+8 .. i+16`. Near the end that slice is shorter than 8 and can never be equal,
//!    but it still counts as a comparison, so the denominator is `len(words) − 8`. The score is
//!    `1 − repeats / comparisons`, or 1 when there are none (exactly 8 words).
//! 4. Token ids: cut at the first pad id (151643, hard-coded). Fewer than 16 ids gets 0.5
//!    outright (the word score is ignored). Otherwise every full pair of consecutive id
//!    8-grams (`len − 15` of them) is compared: `token = 1 − repeats / pairs`.
//! 5. Reward `(token − (1 − word)) × 0.5`.
//!
//! Fixed mode repairs: the pad id comes from the configuration (`None`: no cut); a completion
//! without any word (empty or whitespace only) gets 0, not the maximum; the word score compares
//! only full pairs of 8-grams, like the token score (`len − 15` comparisons, 1 when fewer than
//! 16 words), so a fully periodic text scores 0 rather than a diluted value.
//!
//! Both modes need the token ids once a completion has 8 words or more; without them the
//! reward is [`RewardError::MissingTokenIds`].

use super::{COMPAT_PAD_TOKEN_ID, Completion, Mode, RewardConfig, RewardError, python};

/// The n-gram size of the official function.
pub const NGRAM: usize = 8;
/// The reward's maximum.
pub const REPETITION_MAX_REWARD: f64 = 0.5;

/// `repetitive_reward` of one completion.
pub fn repetitive_reward(
    config: &RewardConfig,
    completion: &Completion,
) -> Result<f64, RewardError> {
    let words = python::split(completion.text);
    let (pad, word_score) = match config.mode {
        Mode::Compat => {
            if completion.text.is_empty() || words.len() < NGRAM {
                return Ok(REPETITION_MAX_REWARD);
            }
            let comparisons = words.len() - NGRAM;
            let repeats = (0..comparisons)
                .filter(|&i| {
                    let next_end = (i + 2 * NGRAM).min(words.len());
                    words[i..i + NGRAM] == words[i + NGRAM..next_end]
                })
                .count();
            let score = if comparisons == 0 {
                1.0
            } else {
                1.0 - repeats as f64 / comparisons as f64
            };
            (Some(COMPAT_PAD_TOKEN_ID), score)
        }
        Mode::Fixed => {
            if words.is_empty() {
                return Ok(0.0);
            }
            if words.len() < NGRAM {
                return Ok(REPETITION_MAX_REWARD);
            }
            (config.pad_token_id, adjacent_repeat_score(&words))
        }
    };
    let ids = completion.ids.ok_or(RewardError::MissingTokenIds)?;
    let ids = match pad.and_then(|pad| ids.iter().position(|&id| id == pad)) {
        Some(end) => &ids[..end],
        None => ids,
    };
    if ids.len() < 2 * NGRAM {
        return Ok(REPETITION_MAX_REWARD);
    }
    let token_score = adjacent_repeat_score(ids);
    Ok((token_score - (1.0 - word_score)) * REPETITION_MAX_REWARD)
}

/// `1 − repeats / pairs` over every full pair of consecutive n-grams; 1 without a pair.
fn adjacent_repeat_score<T: PartialEq>(items: &[T]) -> f64 {
    if items.len() < 2 * NGRAM {
        return 1.0;
    }
    let pairs = items.len() - 2 * NGRAM + 1;
    let repeats = (0..pairs)
        .filter(|&i| items[i..i + NGRAM] == items[i + NGRAM..i + 2 * NGRAM])
        .count();
    1.0 - repeats as f64 / pairs as f64
}
