//! The answer-accuracy judge behind an OpenAI-compatible chat-completions API (spec §4), and
//! the run-config choice between it and the offline [`RuleJudge`].
//!
//! The official GRIT code asks GPT-4o with the default temperature and no system prompt, tries
//! three times without waiting, and scores any failure 0. [`Mode::Compat`] reproduces that:
//! three immediate tries, every failure (transport, any HTTP status, a reply without a number)
//! retried, no `temperature` field, lenient parsing ([`parse_score_compat`], `"Score: 1/1"` →
//! 11). [`Mode::Fixed`] makes the judge a measurement: temperature 0, retries with doubling
//! back-off only where a retry can help (transport errors, timeouts, HTTP 429 and 5xx), strict
//! parsing ([`parse_score_fixed`]), and every failure an error, never a silent 0. Both modes
//! honour a server's `Retry-After` (the official client library does too) and can keep
//! successful replies in an on-disk cache, so a rerun asks only what it has not asked before.
//!
//! [`RuleJudge`]: grit_data::rewards::RuleJudge
//! [`Mode::Compat`]: grit_data::rewards::Mode::Compat
//! [`Mode::Fixed`]: grit_data::rewards::Mode::Fixed
//! [`parse_score_compat`]: grit_data::rewards::parse_score_compat
//! [`parse_score_fixed`]: grit_data::rewards::parse_score_fixed

mod cache;
mod config;
mod openai;

pub use config::{JudgeConfig, JudgeError};
pub use openai::{OpenAiJudge, OpenAiJudgeConfig};
