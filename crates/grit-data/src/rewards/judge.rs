//! The answer-accuracy reward and its judge: the prompt, the parsing of the judge's reply, a
//! replay judge (a recorded reply) and an offline rule judge. The HTTP judge lives elsewhere;
//! it implements [`Judge`].
//!
//! Official behaviour (`gpt_score_reward`): OVD rows (`'ovd' in dataset`) get 0; without
//! `<answer>` the reward is 0 and the judge is not asked; the prediction is the text after the
//! first `<answer>` up to the next `</answer>` (untrimmed); the question is the whole user text
//! of the prompt, suffix included (`text.split('Please answer question: ')[-1]`, a phrase the
//! GRIT prompt does not contain); any failure after three tries scores 0. The trainer then
//! binarizes (score > 0 → 1, [`binarize`]).
//!
//! Fixed: the bare question, the trimmed prediction, strict parsing ([`parse_score_fixed`]),
//! and a failure is an error ([`RewardError::Judge`]), never a silent 0.

use super::python;
use super::{Mode, RewardConfig, RewardError, Sample};
use regex::Regex;
use std::sync::LazyLock;

/// The judge prompt before substitution, exactly as the official code writes it (typographic
/// apostrophes; a space ends the question and answer lines; `{{score: <score>}}` in the Python
/// f-string is the literal `{score: <score>}`).
pub const JUDGE_PROMPT_TEMPLATE: &str = "You are responsible for proofreading the answers, you need to give a score to the model\u{2019}s answer by referring to the standard answer, based on the given question. The full score is 1 point and the minimum score is 0 points. Please output the score in the json form \"{score: <score>}\". The evaluation criteria require that the closer the model\u{2019}s answer is to the standard answer, the higher the score.\nQuestion: {question} \nStandard answer: {answer} \nModel\u{2019}s answer: {prediction}";

/// The judge prompt for one answer (plain substitution, no escaping, as the f-string does).
pub fn judge_prompt(question: &str, answer: &str, prediction: &str) -> String {
    let (head, rest) = JUDGE_PROMPT_TEMPLATE
        .split_once("{question}")
        .expect("the template has {question}");
    let (middle, rest) = rest
        .split_once("{answer}")
        .expect("the template has {answer}");
    let (tail, end) = rest
        .split_once("{prediction}")
        .expect("the template has {prediction}");
    [head, question, middle, answer, tail, prediction, end].concat()
}

/// What the judge is asked about one answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JudgeQuery {
    pub question: String,
    pub reference: String,
    pub prediction: String,
}

impl JudgeQuery {
    pub fn prompt(&self) -> String {
        judge_prompt(&self.question, &self.reference, &self.prediction)
    }
}

/// Something that scores an answer against the reference: an LLM behind an API, a recorded
/// reply, or rules. Returns the raw score (not binarized).
pub trait Judge {
    fn judge(&mut self, query: &JudgeQuery) -> Result<f64, RewardError>;

    /// Scores several answers, one result per query in the queries' order. By default one
    /// [`Judge::judge`] call after another; a judge behind an API may ask several at once.
    fn judge_batch(&mut self, queries: &[JudgeQuery]) -> Vec<Result<f64, RewardError>> {
        queries.iter().map(|query| self.judge(query)).collect()
    }
}

/// The question text the compat judge sees: the whole user text (`"\nQuestion: " + question +
/// suffix`), cut after the last `Please answer question: ` if present.
pub fn compat_question_text(question: &str, suffix: &str) -> String {
    let user_text = format!("\nQuestion: {question}{suffix}");
    match user_text.rsplit_once("Please answer question: ") {
        Some((_, after)) => after.to_owned(),
        None => user_text,
    }
}

/// What the judge is asked to score: the text after the first `<answer>` up to `</answer>`;
/// for a direct (zero-shot) question the whole response, stripped, as the official
/// `gpt_score_reward_1` has it. `None` when the reward is 0 without asking: no `<answer>`, or an
/// empty direct response (compat tests emptiness before stripping, as the official code does).
fn prediction<'a>(config: &RewardConfig, text: &'a str) -> Option<&'a str> {
    if config.prompt_style.judges_whole_response() {
        return match config.mode {
            Mode::Compat => (!text.is_empty()).then(|| python::strip(text)),
            Mode::Fixed => Some(text.trim()).filter(|t| !t.is_empty()),
        };
    }
    let at = text.find("<answer>")?;
    let after = &text[at + "<answer>".len()..];
    Some(after.find("</answer>").map_or(after, |end| &after[..end]))
}

/// The query for a completion, or `None` when the reward is 0 without asking: OVD rows
/// (grounding only; the official zero-shot scoring judges them too, and compat does), or no
/// prediction.
pub fn judge_query(config: &RewardConfig, text: &str, sample: &Sample) -> Option<JudgeQuery> {
    let zero_shot_compat =
        config.prompt_style.judges_whole_response() && config.mode == Mode::Compat;
    if sample.dataset.contains("ovd") && !zero_shot_compat {
        return None;
    }
    let prediction = prediction(config, text)?;
    Some(match config.mode {
        Mode::Compat => JudgeQuery {
            question: compat_question_text(sample.question, config.prompt_style.suffix()),
            reference: sample.answer.to_owned(),
            prediction: prediction.to_owned(),
        },
        Mode::Fixed => JudgeQuery {
            question: sample.question.to_owned(),
            reference: sample.answer.to_owned(),
            prediction: prediction.trim().to_owned(),
        },
    })
}

/// The answer-accuracy reward, raw (see [`binarize`] for training): 0 without asking where
/// [`judge_query`] has no query; compat turns a judge failure into 0.
pub fn answer_accuracy_reward(
    config: &RewardConfig,
    text: &str,
    sample: &Sample,
    judge: &mut dyn Judge,
) -> Result<f64, RewardError> {
    let Some(query) = judge_query(config, text, sample) else {
        return Ok(0.0);
    };
    match (config.mode, judge.judge(&query)) {
        (Mode::Compat, Err(_)) => Ok(0.0),
        (_, result) => result,
    }
}

/// The official trainer's binarization: 1 when the score is above 0, else 0.
pub fn binarize(score: f64) -> f64 {
    if score > 0.0 { 1.0 } else { 0.0 }
}

/// Python's `[^\w\s\.]` with `\w` = `str.isalnum()` or `_` and `\s` = `str.isspace()`.
static COMPAT_DROP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[^\p{L}\p{N}_\s\x1C-\x1F.]").expect("valid"));

/// The official parsing of a judge reply: strip, lower-case, drop every character other than
/// word characters, whitespace and dots, take the text after the last `score`, its first 5
/// characters, keep the digits and dots, and parse a float. `"Score: 1/1"` → 11; `"{score:
/// 0.5}"` → 0.5; a reply without a number (`"I do not know."`) is an error, which the official
/// code retried and then scored 0.
pub fn parse_score_compat(reply: &str) -> Result<f64, RewardError> {
    let lowered = python::strip(reply).to_lowercase();
    let kept = COMPAT_DROP.replace_all(&lowered, "");
    let after = kept.rsplit("score").next().unwrap_or_default();
    let number: String = after
        .chars()
        .take(5)
        .filter(|&c| c == '.' || python::is_decimal(c))
        .map(|c| if c == '.' { c } else { python::ascii_digit(c) })
        .collect();
    number
        .parse::<f64>()
        .map_err(|_| RewardError::Judge(format!("could not convert string to float: {number:?}")))
}

/// `score`, a colon or equals sign (quotes allowed around the key), a number, and optionally
/// `/ denominator`.
static FIXED_SCORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\bscore\b["']?\s*[:=]\s*["']?\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:\s*/\s*([0-9]+(?:\.[0-9]*)?))?"#,
    )
    .expect("valid")
});

/// Strict parsing: the last `score: X` (also `"score": X`, `{score: X}`, `score = X`) in the
/// reply, X a decimal number, optionally written as a fraction `X / Y` (so `"Score: 1/1"` is
/// 1, where compat reads 11), clamped to [0, 1]. No such score, or a zero denominator, is an
/// error.
pub fn parse_score_fixed(reply: &str) -> Result<f64, RewardError> {
    let captures = FIXED_SCORE
        .captures_iter(reply)
        .last()
        .ok_or_else(|| RewardError::Judge(format!("no score in the judge's reply {reply:?}")))?;
    let number = |i: usize| captures.get(i).map(|m| m.as_str().parse::<f64>());
    let mut score = number(1)
        .expect("group 1 always takes part")
        .map_err(|e| RewardError::Judge(e.to_string()))?;
    if let Some(denominator) = number(2) {
        let denominator = denominator.map_err(|e| RewardError::Judge(e.to_string()))?;
        if denominator == 0.0 {
            return Err(RewardError::Judge(format!(
                "a score out of zero in the judge's reply {reply:?}"
            )));
        }
        score /= denominator;
    }
    Ok(score.clamp(0.0, 1.0))
}

/// The judge's reply, already recorded; parsed with the mode's parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayJudge {
    pub reply: String,
    pub mode: Mode,
}

impl Judge for ReplayJudge {
    fn judge(&mut self, _query: &JudgeQuery) -> Result<f64, RewardError> {
        match self.mode {
            Mode::Compat => parse_score_compat(&self.reply),
            Mode::Fixed => parse_score_fixed(&self.reply),
        }
    }
}

/// An offline judge: 1 or 0 by rules, for runs without an API.
///
/// Both texts are lower-cased and cut into tokens at every character that is neither
/// alphanumeric nor a dot (dots at token ends are dropped, so `2.5` stays a number and `cats.`
/// becomes `cats`). Then, in order:
/// 1. the same non-empty token sequence → 1;
/// 2. a reference that is one number (digits, or a number word zero–twenty) → 1 when the
///    prediction's numbers (digits or number words) are all that number, else 0 (`"2 cats"`
///    and `"two"` match `2`; `"2 or 3"` does not);
/// 3. a reference that is one yes/no word (`yes`, `true`, `correct`, `yeah`, `yep` / `no`,
///    `false`, `incorrect`, `nope`) → 1 when the prediction's first such word has the same
///    polarity (`"Yes, it is"` and `"True"` match `yes`), else 0;
/// 4. otherwise 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleJudge;

const NUMBER_WORDS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];
const YES: [&str; 5] = ["yes", "true", "correct", "yeah", "yep"];
const NO: [&str; 4] = ["no", "false", "incorrect", "nope"];

fn rule_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '.'))
        .map(|t| t.trim_matches('.'))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn number_of(token: &str) -> Option<f64> {
    if let Some(i) = NUMBER_WORDS.iter().position(|w| *w == token) {
        return Some(i as f64);
    }
    if token.starts_with(|c: char| c.is_ascii_digit())
        && token.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return token.parse().ok();
    }
    None
}

fn polarity_of(token: &str) -> Option<bool> {
    if YES.contains(&token) {
        Some(true)
    } else if NO.contains(&token) {
        Some(false)
    } else {
        None
    }
}

impl RuleJudge {
    /// The rule score of a prediction against a reference: 0 or 1.
    pub fn score(&self, reference: &str, prediction: &str) -> f64 {
        let reference = rule_tokens(reference);
        let prediction = rule_tokens(prediction);
        if !reference.is_empty() && reference == prediction {
            return 1.0;
        }
        if let [only] = reference.as_slice() {
            if let Some(expected) = number_of(only) {
                let numbers: Vec<f64> = prediction.iter().filter_map(|t| number_of(t)).collect();
                let all_match = !numbers.is_empty() && numbers.iter().all(|&n| n == expected);
                return if all_match { 1.0 } else { 0.0 };
            }
            if let Some(expected) = polarity_of(only) {
                let first = prediction.iter().find_map(|t| polarity_of(t));
                return if first == Some(expected) { 1.0 } else { 0.0 };
            }
        }
        0.0
    }
}

impl Judge for RuleJudge {
    fn judge(&mut self, query: &JudgeQuery) -> Result<f64, RewardError> {
        Ok(self.score(&query.reference, &query.prediction))
    }
}
