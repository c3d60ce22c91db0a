//! The Ask pipeline on a tiny random Qwen2.5-VL with the real Qwen vocabulary: the text is
//! gibberish, so the test checks the events, streaming and cancelling.

use std::path::{Path, PathBuf};
use std::time::Duration;

use grit_data::prompt::PromptStyle;
use grit_model::backend::{BackendKind, Cpu};
use grit_model::qwen2_5_vl::Qwen2_5VlConfig;
use grit_model::weights::StoreDtype;
use grit_view::ask::{Answer, Event, Question, Session};

fn tiny_checkpoint() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    Qwen2_5VlConfig::tiny()
        .init::<Cpu>(&Default::default())
        .save(dir.path(), StoreDtype::Bf16)
        .unwrap();
    let tokenizer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tokenizer");
    for file in [
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.json",
        "generation_config.json",
        "preprocessor_config.json",
    ] {
        std::fs::copy(tokenizer.join(file), dir.path().join(file)).unwrap();
    }
    dir
}

fn image() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run/images/g0.png")
}

fn question(max_new_tokens: usize) -> Question {
    Question {
        image: image(),
        text: "How many circles are there?".into(),
        style: PromptStyle::Grit,
        max_new_tokens,
        temperature: 0.0,
    }
}

/// Every event until the answer is done or failed.
fn events(answer: &Answer) -> Vec<Event> {
    let mut all = Vec::new();
    loop {
        let event = answer
            .events
            .recv_timeout(Duration::from_secs(120))
            .expect("the session answers");
        let last = matches!(event, Event::Done { .. } | Event::Failed(_));
        all.push(event);
        if last {
            return all;
        }
    }
}

#[test]
fn an_answer_streams_and_a_cancelled_one_stops_after_one_token() {
    let model = tiny_checkpoint();
    let ctx = eframe::egui::Context::default();
    let session = Session::start(model.path().to_owned(), BackendKind::Cpu);

    let answer = session.ask(question(6), &ctx).unwrap();
    let all = events(&answer);
    assert!(matches!(all[0], Event::Status(_)), "{all:?}");
    let Event::Started { original, .. } = &all[1] else {
        panic!("{all:?}")
    };
    assert_eq!((original.width, original.height), (64, 64));
    let Some(Event::Done { finish, tokens, .. }) = all.last() else {
        panic!("{all:?}")
    };
    assert_eq!(*tokens, 6, "{all:?}");
    assert!(finish.is_some());
    assert!(all.iter().any(|e| matches!(e, Event::Piece(_))), "{all:?}");

    // The same session (model already loaded) takes the next question; cancelling before the
    // first token stops generation right after it.
    let answer = session.ask(question(50), &ctx).unwrap();
    answer.cancel();
    let all = events(&answer);
    assert!(matches!(all[0], Event::Started { .. }), "{all:?}");
    let Some(Event::Done { finish, tokens, .. }) = all.last() else {
        panic!("{all:?}")
    };
    assert_eq!((*finish, *tokens), (None, 1), "{all:?}");
}

#[test]
fn a_missing_checkpoint_is_a_message() {
    let ctx = eframe::egui::Context::default();
    let session = Session::start(PathBuf::from("/nonexistent/checkpoint"), BackendKind::Cpu);
    let answer = session.ask(question(4), &ctx).unwrap();
    let all = events(&answer);
    assert!(matches!(all.last(), Some(Event::Failed(_))), "{all:?}");
}
