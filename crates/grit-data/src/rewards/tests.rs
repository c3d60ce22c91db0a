use super::*;
use crate::completion::{BoxFrame, ImageSize};
use crate::prompt::{GRIT_SUFFIX, PromptStyle};

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() < 1e-12
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(close(actual, expected), "{what}: {actual} != {expected}");
}

const ROW1: &str = "<think> I see two cats {\"bbox_2d\": [1, 2, 3, 4]} and [5, 6, 7, 8] </think>\n<rethink> two boxes </rethink>\n<answer> 2 </answer>";

/// (completion, dataset, answer, answer format, think format, grounded+count, bleu compat,
/// bleu fixed). Format and grounded values are the official functions' and the same in both
/// modes on these rows.
type TableRow = (
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
    f64,
    f64,
    f64,
);

const TABLE: &[TableRow] = &[
    (ROW1, "tallyqa", "2", 0.5, 0.5, 1.5, 0.05, 0.1),
    (
        "<think> x </think><rethink> y </rethink><answer>yes</answer>",
        "vsr",
        "yes",
        0.5,
        0.4,
        0.0,
        0.05,
        0.1,
    ),
    (
        "<think>ab</think><rethink></rethink><answer>yes</answer><answer>",
        "vsr",
        "yes",
        0.25,
        0.4,
        0.0,
        0.1 / 3.0,
        0.1,
    ),
    (
        "<think> none </think><rethink> none </rethink><answer>0</answer>",
        "tallyqa",
        "0",
        0.5,
        0.4,
        1.0,
        0.05,
        0.1,
    ),
    ("", "vsr", "yes", 0.0, 0.0, 0.0, 0.0, 0.0),
];

#[test]
fn the_official_table_holds_in_both_modes() {
    for mode in [Mode::Compat, Mode::Fixed] {
        let config = RewardConfig::new(mode);
        for &(text, dataset, answer, fmt, think, grounded, bleu_compat, bleu_fixed) in TABLE {
            let sample = Sample::new(dataset, answer, "q");
            let what = format!("{mode:?} {text:?}");
            assert_close(answer_format_reward(text), fmt, &what);
            assert_close(think_and_rethink_format_reward(mode, text), think, &what);
            let g = grounded_region_specific_thinking_format_reward_think_rethink(
                &config, text, &sample, dataset,
            )
            .unwrap();
            assert_close(g, grounded, &what);
            let bleu = if mode == Mode::Compat {
                bleu_compat
            } else {
                bleu_fixed
            };
            assert_close(bleu_score_reward(mode, text, answer), bleu, &what);
        }
    }
}

#[test]
fn compat_count_uses_the_batch_first_dataset() {
    let config = RewardConfig::new(Mode::Compat);
    let text = TABLE[3].0;
    // A TallyQA row in a batch led by VSR earns no count bonus.
    let tally = Sample::new("tallyqa", "0", "q");
    let r =
        grounded_region_specific_thinking_format_reward_think_rethink(&config, text, &tally, "vsr");
    assert_eq!(r, Ok(0.0));
    // A VSR row in a batch led by TallyQA is counted, and int("yes") raises.
    let vsr = Sample::new("vsr", "yes", "q");
    let r = grounded_region_specific_thinking_format_reward_think_rethink(
        &config, text, &vsr, "tallyqa",
    );
    assert_eq!(r, Err(RewardError::NotAnInteger("yes".into())));
    // Fixed mode looks at the row's own dataset and never raises.
    let fixed = RewardConfig::new(Mode::Fixed);
    let r =
        grounded_region_specific_thinking_format_reward_think_rethink(&fixed, text, &tally, "vsr");
    assert_eq!(r, Ok(1.0));
    let two = Sample::new("tallyqa", "two", "q");
    let r = grounded_region_specific_thinking_format_reward_think_rethink(
        &fixed, ROW1, &two, "tallyqa",
    );
    assert_eq!(r, Ok(0.5));
    let r = grounded_region_specific_thinking_format_reward_think_rethink(
        &config, ROW1, &two, "tallyqa",
    );
    assert!(matches!(r, Err(RewardError::NotAnInteger(_))));
}

#[test]
fn compat_int_accepts_what_python_accepts() {
    let config = RewardConfig::new(Mode::Compat);
    let sample = Sample::new("tallyqa", " 2\n", "q");
    let r = grounded_region_specific_thinking_format_reward_think_rethink(
        &config, ROW1, &sample, "tallyqa",
    );
    assert_eq!(r, Ok(1.5));
}

#[test]
fn duplicates_count_in_compat_only_and_the_guard_drops_degenerate_boxes() {
    let text = "<think>[1,2,3,4] [1,2,3,4]</think><rethink> ok </rethink><answer>1</answer>";
    let sample = Sample::new("tallyqa", "1", "q");
    let compat = RewardConfig::new(Mode::Compat);
    let fixed = RewardConfig::new(Mode::Fixed);
    let g = |c: &RewardConfig, t: &str, s: &Sample| {
        grounded_region_specific_thinking_format_reward_think_rethink(c, t, s, "tallyqa").unwrap()
    };
    assert_eq!(g(&compat, text, &sample), 0.5);
    assert_eq!(g(&fixed, text, &sample), 1.5);

    let degenerate = "<think>[5, 5, 5, 9]</think><rethink> ok </rethink>";
    let zero = Sample::new("tallyqa", "0", "q");
    assert_eq!(g(&fixed, degenerate, &zero), 0.5);
    let mut guarded = RewardConfig::new(Mode::Fixed);
    guarded.degenerate_guard = Some(DegenerateGuard::default());
    assert_eq!(g(&guarded, degenerate, &zero), 1.0);

    let whole = "<think>[0, 0, 1000, 1000] [10, 10, 200, 200]</think><rethink></rethink>";
    let mut framed = Sample::new("tallyqa", "1", "q");
    framed.frame = Some((
        BoxFrame::Normalized1000,
        ImageSize {
            width: 640,
            height: 480,
        },
    ));
    assert_eq!(g(&fixed, whole, &framed), 0.5);
    assert_eq!(g(&guarded, whole, &framed), 1.5);
}

#[test]
fn strict_boxes_count_only_four_number_lists() {
    let text = "<think> a [1,2,3,4,5] b {\"bbox_2d\": [10, 20, 30, 40]} c [[5,6,7,8],[9,9,12,12]] \
                d 1, 2, 3, 4 </think><rethink> ok </rethink><answer>3</answer>";
    let sample = Sample::new("tallyqa", "3", "q");
    let g = |c: &RewardConfig| {
        grounded_region_specific_thinking_format_reward_think_rethink(c, text, &sample, "tallyqa")
            .unwrap()
    };
    // The official regex finds five: the first four of [1,2,3,4,5], the JSON box, both nested
    // ones and the bare run.
    assert_eq!(g(&RewardConfig::new(Mode::Fixed)), 0.5);
    let mut strict = RewardConfig::new(Mode::Fixed);
    strict.strict_boxes = true;
    assert_eq!(g(&strict), 1.5);
    // Compat ignores the switch.
    strict.mode = Mode::Compat;
    assert_eq!(g(&strict), 0.5);
}

#[test]
fn no_rethink_no_grounded_reward() {
    for mode in [Mode::Compat, Mode::Fixed] {
        let config = RewardConfig::new(mode);
        let text = "<think>[1,2,3,4]</think><answer>1</answer>";
        let sample = Sample::new("tallyqa", "1", "q");
        let r = grounded_region_specific_thinking_format_reward_think_rethink(
            &config, text, &sample, "tallyqa",
        );
        assert_eq!(r, Ok(0.0));
    }
}

#[test]
fn boxes_after_the_first_rethink_do_not_count() {
    let config = RewardConfig::new(Mode::Compat);
    let text = "<think> none </think><rethink> [1,2,3,4] </rethink><rethink>";
    let sample = Sample::new("tallyqa", "0", "q");
    let r = grounded_region_specific_thinking_format_reward_think_rethink(
        &config, text, &sample, "tallyqa",
    );
    assert_eq!(r, Ok(1.0));
}

#[test]
fn think_format_word_test_differs_by_mode() {
    // A newline is no space for `split(' ')`.
    let text = "<think>a\nb</think><rethink>x</rethink>";
    assert_close(
        think_and_rethink_format_reward(Mode::Compat, text),
        0.4,
        "compat a\\nb",
    );
    assert_close(
        think_and_rethink_format_reward(Mode::Fixed, text),
        0.5,
        "fixed a\\nb",
    );
    // One word and a comma: three pieces for `split(' ')`, one word.
    let text = "<think>x ,</think><rethink></rethink>";
    assert_close(
        think_and_rethink_format_reward(Mode::Compat, text),
        0.5,
        "compat x ,",
    );
    assert_close(
        think_and_rethink_format_reward(Mode::Fixed, text),
        0.4,
        "fixed x ,",
    );
    // Keys out of order: `</think>` is only searched after the last `<think>`.
    let text = "</think><think> a b";
    assert_close(
        think_and_rethink_format_reward(Mode::Compat, text),
        0.1,
        "order",
    );
    let text = "<rethink></rethink>";
    assert_close(
        think_and_rethink_format_reward(Mode::Compat, text),
        0.2,
        "rethink only",
    );
}

#[test]
fn bleu_by_hand() {
    // ref: the cat is on the mat (6); hyp: the the the cat (4); clipped 2 + 1 = 3.
    let reference = ["the", "cat", "is", "on", "the", "mat"];
    let hypothesis = ["the", "the", "the", "cat"];
    let expected = 0.75 * (1.0f64 - 6.0 / 4.0).exp();
    assert_close(
        unigram_bleu_pub(&reference, &hypothesis),
        expected,
        "unigram",
    );
    let text = "<answer>The the THE, cat</answer>";
    assert_close(
        bleu_score_reward(Mode::Fixed, text, "The cat is on the mat."),
        0.1 * expected,
        "fixed",
    );
    // Compat adds the word "answer": 3 of 5, BP exp(1 - 6/5).
    let expected = 0.6 * (1.0f64 - 6.0 / 5.0).exp();
    assert_close(
        bleu_score_reward(Mode::Compat, text, "The cat is on the mat."),
        0.1 * expected,
        "compat",
    );
    // Longer than the reference: no brevity penalty.
    assert_close(
        bleu_score_reward(Mode::Fixed, "<answer>yes yes it is", "Yes"),
        0.1 * 0.25,
        "long",
    );
    assert_eq!(
        bleu_score_reward(Mode::Fixed, "<answer>no</answer>", "yes"),
        0.0
    );
    assert_eq!(bleu_score_reward(Mode::Compat, "yes", "yes"), 0.0);
    assert_eq!(
        bleu_score_reward(Mode::Fixed, "<answer></answer>", "yes"),
        0.0
    );
    // Non-ASCII letters become spaces.
    assert_close(
        bleu_score_reward(Mode::Fixed, "<answer>café</answer>", "caf"),
        0.1,
        "non-ascii",
    );
}

fn unigram_bleu_pub(reference: &[&str], hypothesis: &[&str]) -> f64 {
    bleu::unigram_bleu(reference, hypothesis)
}

fn periodic(words: usize) -> (String, Vec<u32>) {
    let text: Vec<String> = (0..words).map(|i| format!("w{}", i % 8)).collect();
    let ids = (0..words as u32).map(|i| i % 8).collect();
    (text.join(" "), ids)
}

#[test]
fn repetition_of_a_repetitive_text() {
    let (text, ids) = periodic(32);
    let completion = Completion {
        text: &text,
        ids: Some(&ids),
    };
    // Compat: 24 word comparisons, 17 full pairs all repeat → word = 7/24; tokens: 17/17 → 0.
    let compat = repetitive_reward(&RewardConfig::new(Mode::Compat), &completion).unwrap();
    assert_close(compat, (0.0 - (1.0 - 7.0 / 24.0)) * 0.5, "compat");
    let fixed = repetitive_reward(&RewardConfig::new(Mode::Fixed), &completion).unwrap();
    assert_close(fixed, -0.5, "fixed");
}

#[test]
fn repetition_of_a_varied_text() {
    let text: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
    let text = text.join(" ");
    let ids: Vec<u32> = (0..20).collect();
    let completion = Completion {
        text: &text,
        ids: Some(&ids),
    };
    for mode in [Mode::Compat, Mode::Fixed] {
        assert_eq!(
            repetitive_reward(&RewardConfig::new(mode), &completion),
            Ok(0.5)
        );
    }
}

#[test]
fn repetition_of_short_and_empty_texts() {
    let compat = RewardConfig::new(Mode::Compat);
    let fixed = RewardConfig::new(Mode::Fixed);
    let short = Completion::text("a b c d e f g");
    assert_eq!(repetitive_reward(&compat, &short), Ok(0.5));
    assert_eq!(repetitive_reward(&fixed, &short), Ok(0.5));
    let empty = Completion::text("");
    assert_eq!(repetitive_reward(&compat, &empty), Ok(0.5));
    assert_eq!(repetitive_reward(&fixed, &empty), Ok(0.0));
    let blank = Completion::text(" \n ");
    assert_eq!(repetitive_reward(&compat, &blank), Ok(0.5));
    assert_eq!(repetitive_reward(&fixed, &blank), Ok(0.0));
    // Eight words need the ids, in both modes.
    let long = Completion::text("a b c d e f g h");
    assert_eq!(
        repetitive_reward(&compat, &long),
        Err(RewardError::MissingTokenIds)
    );
    assert_eq!(
        repetitive_reward(&fixed, &long),
        Err(RewardError::MissingTokenIds)
    );
    // Fewer than 16 ids: the maximum, whatever the words.
    let (text, _) = periodic(32);
    let ids = [1u32; 15];
    let c = Completion {
        text: &text,
        ids: Some(&ids),
    };
    assert_eq!(repetitive_reward(&compat, &c), Ok(0.5));
}

#[test]
fn repetition_cuts_ids_at_the_pad() {
    let (text, mut ids) = periodic(32);
    // Padding cut at 16 ids in compat (hard-coded pad): 1 pair, a repeat.
    ids.truncate(16);
    ids.extend([COMPAT_PAD_TOKEN_ID; 8]);
    ids.extend(0..16);
    let c = Completion {
        text: &text,
        ids: Some(&ids),
    };
    let compat = repetitive_reward(&RewardConfig::new(Mode::Compat), &c).unwrap();
    assert_close(compat, (0.0 - 17.0 / 24.0) * 0.5, "compat pad");
    // Fixed with another pad id does not cut: 25 pairs, 1 repeat.
    let mut fixed = RewardConfig::new(Mode::Fixed);
    fixed.pad_token_id = Some(7);
    let cut_at_7 = repetitive_reward(&fixed, &c).unwrap();
    // Cut at the first 7 (index 7): fewer than 16 ids → maximum.
    assert_eq!(cut_at_7, 0.5);
    fixed.pad_token_id = None;
    let uncut = repetitive_reward(&fixed, &c).unwrap();
    let token = 1.0 - 1.0 / 25.0;
    assert_close(uncut, (token - 1.0) * 0.5, "fixed uncut");
}

#[test]
fn judge_prompt_is_exact() {
    let prompt = judge_prompt("How many?", "2", " two ");
    let expected = "You are responsible for proofreading the answers, you need to give a score to the model’s answer by referring to the standard answer, based on the given question. The full score is 1 point and the minimum score is 0 points. Please output the score in the json form \"{score: <score>}\". The evaluation criteria require that the closer the model’s answer is to the standard answer, the higher the score.\nQuestion: How many? \nStandard answer: 2 \nModel’s answer:  two ";
    assert_eq!(prompt, expected);
}

#[test]
fn judge_question_and_prediction_by_mode() {
    let sample = Sample::new("tallyqa", "2", "How many cats?");
    let compat = judge::judge_query(&RewardConfig::new(Mode::Compat), ROW1, &sample).unwrap();
    assert_eq!(
        compat.question,
        format!("\nQuestion: How many cats?{GRIT_SUFFIX}")
    );
    assert_eq!(compat.prediction, " 2 ");
    let fixed = judge::judge_query(&RewardConfig::new(Mode::Fixed), ROW1, &sample).unwrap();
    assert_eq!(fixed.question, "How many cats?");
    assert_eq!(fixed.prediction, "2");
    assert_eq!(
        judge::compat_question_text("x Please answer question: why?", ""),
        "why?"
    );
    assert!(judge::judge_query(&RewardConfig::new(Mode::Fixed), "no tag", &sample).is_none());
}

#[test]
fn compat_score_parsing() {
    let cases: &[(&str, f64)] = &[
        ("Score: 1/1", 11.0),
        ("{score: 1}", 1.0),
        ("{score: 0.5}", 0.5),
        ("{\"score\": 0}", 0.0),
        ("The score is 0.75 points", 0.0),
        ("1", 1.0),
        ("SCORE: ١", 1.0),
    ];
    for &(reply, expected) in cases {
        match parse_score_compat(reply) {
            Ok(score) => assert_close(score, expected, reply),
            Err(e) => panic!("{reply:?}: {e}"),
        }
    }
    for reply in [
        "I do not know.",
        "",
        "score: none",
        "score: .",
        "{score: 1}. Explanation: the score",
    ] {
        assert!(parse_score_compat(reply).is_err(), "{reply:?}");
    }
}

#[test]
fn fixed_score_parsing() {
    let cases: &[(&str, f64)] = &[
        ("Score: 1/1", 1.0),
        ("{score: 1}", 1.0),
        ("{score: 0.5}", 0.5),
        ("{\"score\": 0}", 0.0),
        ("score = .25", 0.25),
        ("{score: 5}", 1.0),
        ("Score: 1/2", 0.5),
        ("{score: 0} no wait, {score: 1}", 1.0),
    ];
    for &(reply, expected) in cases {
        match parse_score_fixed(reply) {
            Ok(score) => assert_close(score, expected, reply),
            Err(e) => panic!("{reply:?}: {e}"),
        }
    }
    for reply in [
        "I do not know.",
        "",
        "The score is 0.75 points",
        "score: 1/0",
        "1",
    ] {
        assert!(parse_score_fixed(reply).is_err(), "{reply:?}");
    }
}

#[test]
fn accuracy_reward_by_mode() {
    let sample = Sample::new("tallyqa", "2", "How many cats?");
    let compat = RewardConfig::new(Mode::Compat);
    let fixed = RewardConfig::new(Mode::Fixed);
    let replay = |mode, reply: &str| ReplayJudge {
        reply: reply.into(),
        mode,
    };
    let mut j = replay(Mode::Compat, "Score: 1/1");
    assert_eq!(
        answer_accuracy_reward(&compat, ROW1, &sample, &mut j),
        Ok(11.0)
    );
    assert_eq!(binarize(11.0), 1.0);
    let mut j = replay(Mode::Compat, "I do not know.");
    assert_eq!(
        answer_accuracy_reward(&compat, ROW1, &sample, &mut j),
        Ok(0.0)
    );
    let mut j = replay(Mode::Fixed, "I do not know.");
    assert!(answer_accuracy_reward(&fixed, ROW1, &sample, &mut j).is_err());
    let mut j = replay(Mode::Fixed, "{score: 1}");
    assert_eq!(
        answer_accuracy_reward(&fixed, ROW1, &sample, &mut j),
        Ok(1.0)
    );
    // No <answer> and OVD rows: 0 without asking.
    assert_eq!(
        answer_accuracy_reward(&fixed, "<think>", &sample, &mut j),
        Ok(0.0)
    );
    let ovd = Sample::new("ovd_position", "2", "q");
    assert_eq!(answer_accuracy_reward(&fixed, ROW1, &ovd, &mut j), Ok(0.0));
    // The rule judge.
    assert_eq!(
        answer_accuracy_reward(&fixed, ROW1, &sample, &mut RuleJudge),
        Ok(1.0)
    );
}

#[test]
fn rule_judge() {
    let j = RuleJudge;
    let cases: &[(&str, &str, f64)] = &[
        ("2", "2", 1.0),
        ("2", "two", 1.0),
        ("twenty", "20", 1.0),
        ("2", "There are 2 cats.", 1.0),
        ("2", "2 or 3", 0.0),
        ("2", "3", 0.0),
        ("2", "", 0.0),
        ("2.5", "2.5", 1.0),
        ("yes", "True", 1.0),
        ("yes", "correct.", 1.0),
        ("yes", "Yes, it is.", 1.0),
        ("no", "Yes, it is.", 0.0),
        ("no", "False", 1.0),
        ("Left side", "left  side!", 1.0),
        ("Left side", "right", 0.0),
        ("", "", 0.0),
    ];
    for &(reference, prediction, expected) in cases {
        assert_eq!(
            j.score(reference, prediction),
            expected,
            "{reference:?} vs {prediction:?}"
        );
    }
}

#[test]
fn compute_all_and_total() {
    let config = RewardConfig::new(Mode::Compat);
    let sample = Sample::new("tallyqa", "2", "How many cats?");
    let words = python::split(ROW1).len();
    let ids: Vec<u32> = (0..words as u32 + 10).collect();
    let completion = Completion {
        text: ROW1,
        ids: Some(&ids),
    };
    let mut judge = RuleJudge;
    let values = compute_all(&config, &completion, &sample, "tallyqa", Some(&mut judge));
    let names: Vec<_> = values.iter().map(|(k, _)| k.official_name()).collect();
    assert_eq!(names[0], "gpt_score_reward");
    assert_eq!(names.len(), 6);
    // 1 (judge) + 0.05 + 0.5 + 0.5 (no repeats) + 1.5 + 0.5
    let total = total_reward(&config, &completion, &sample, "tallyqa", Some(&mut judge)).unwrap();
    assert_close(total, 4.05, "total");
}

#[test]
fn zero_shot_judges_the_whole_response() {
    let mut compat = RewardConfig::new(Mode::Compat);
    compat.prompt_style = PromptStyle::Direct;
    let mut fixed = RewardConfig::new(Mode::Fixed);
    fixed.prompt_style = PromptStyle::Direct;
    let sample = Sample::new("tallyqa", "2", "How many cats?");
    let response = "  There are 2 cats.\n";
    let query = judge::judge_query(&compat, response, &sample).unwrap();
    assert_eq!(query.prediction, "There are 2 cats.");
    assert_eq!(query.question, "\nQuestion: How many cats?");
    assert_eq!(
        judge::judge_query(&fixed, response, &sample)
            .unwrap()
            .prediction,
        "There are 2 cats."
    );
    // The official test for an empty response comes before stripping.
    assert!(judge::judge_query(&compat, "", &sample).is_none());
    assert_eq!(
        judge::judge_query(&compat, " \n", &sample)
            .unwrap()
            .prediction,
        ""
    );
    assert!(judge::judge_query(&fixed, " \n", &sample).is_none());
    // gpt_score_reward_1 has no OVD skip; fixed mode keeps grounding rows out of accuracy.
    let ovd = Sample::new("ovd_position", "the cat", "Where is the cat?");
    assert!(judge::judge_query(&compat, response, &ovd).is_some());
    assert!(judge::judge_query(&fixed, response, &ovd).is_none());
    // The rule judge scores a direct answer without any tags.
    assert_eq!(
        answer_accuracy_reward(&fixed, "2", &sample, &mut RuleJudge),
        Ok(1.0)
    );
}
