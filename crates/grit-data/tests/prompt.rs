//! Prompt rendering, tokenization and detokenization against transformers' references
//! (`tests/fixtures/tokenizer/prompts.json`, made by `tools/fixtures/tokenizer_fixture.py` with
//! `Qwen2_5_VLProcessor` over the real Qwen2.5 vocabulary).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use grit_data::files::FileError;
use grit_data::prompt::{
    ChatTemplate, ChatTokenizer, EncodedPrompt, Message, PromptError, PromptStyle,
    QWEN2_5_VL_CHAT_TEMPLATE, user_message,
};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Fixture {
    suffixes: BTreeMap<String, String>,
    prompts: Vec<PromptCase>,
    chats: Vec<ChatCase>,
    decode: Vec<DecodeCase>,
}

#[derive(Deserialize)]
struct PromptCase {
    name: String,
    style: PromptStyle,
    question: String,
    messages: Vec<Message>,
    image_grid_thw: Vec<[usize; 3]>,
    text: String,
    input_ids: Vec<u32>,
    mm_token_type_ids: Vec<u8>,
}

#[derive(Deserialize)]
struct ChatCase {
    name: String,
    messages: Vec<Message>,
    add_generation_prompt: bool,
    text: String,
    input_ids: Vec<u32>,
    mm_token_type_ids: Vec<u8>,
}

#[derive(Deserialize)]
struct DecodeCase {
    name: String,
    ids: Vec<u32>,
    skip_special_tokens: bool,
    text: String,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tokenizer")
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let text = fs::read_to_string(fixture_dir().join("prompts.json")).expect("prompts.json");
    serde_json::from_str(&text).expect("prompts.json parses")
});

static TOKENIZER: LazyLock<ChatTokenizer> =
    LazyLock::new(|| ChatTokenizer::from_dir(fixture_dir()).expect("fixture tokenizer loads"));

/// Streams `ids` one at a time; returns the pieces, `finish()`'s text last.
fn stream(ids: &[u32], skip_special_tokens: bool) -> Vec<String> {
    let mut decoder = TOKENIZER.stream_decoder(skip_special_tokens);
    let mut pieces: Vec<String> = ids.iter().map(|&id| decoder.push(id)).collect();
    pieces.push(decoder.finish());
    pieces
}

/// A scratch checkpoint: the fixture's tokenizer.json plus the given JSON files.
fn checkpoint_with(files: &[(&str, serde_json::Value)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        fixture_dir().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    for (name, value) in files {
        fs::write(dir.path().join(name), value.to_string()).unwrap();
    }
    dir
}

#[test]
fn suffixes_are_the_specs() {
    for (name, suffix) in &FIXTURE.suffixes {
        let style: PromptStyle = serde_json::from_value(json!(name)).unwrap();
        assert_eq!(style.suffix(), suffix, "{name}");
    }
    assert_eq!(FIXTURE.suffixes.len(), 3);
}

#[test]
fn grit_prompts_match_transformers() {
    assert!(FIXTURE.prompts.len() >= 5);
    for case in &FIXTURE.prompts {
        let message = user_message(case.image_grid_thw.len(), &case.question, case.style);
        assert_eq!(case.messages, [message], "{}: messages", case.name);

        let text = TOKENIZER.render(&case.messages, true).unwrap();
        assert_eq!(text, case.text, "{}: rendered text", case.name);

        let encoded = TOKENIZER
            .encode_prompt(&text, &case.image_grid_thw)
            .unwrap();
        assert_matches_oracle(
            &case.name,
            &encoded,
            &case.input_ids,
            &case.mm_token_type_ids,
        );

        let chat = TOKENIZER
            .encode_chat(&case.messages, &case.image_grid_thw)
            .unwrap();
        assert_eq!(chat, encoded, "{}: encode_chat", case.name);
    }
}

fn assert_matches_oracle(name: &str, encoded: &EncodedPrompt, ids: &[u32], types: &[u8]) {
    assert_eq!(encoded.input_ids, ids, "{name}: input_ids");
    assert_eq!(
        encoded.mm_token_type_ids, types,
        "{name}: mm_token_type_ids"
    );
}

#[test]
fn text_chats_match_transformers() {
    for case in &FIXTURE.chats {
        let text = TOKENIZER
            .render(&case.messages, case.add_generation_prompt)
            .unwrap();
        assert_eq!(text, case.text, "{}: rendered text", case.name);
        let encoded = TOKENIZER.encode_prompt(&text, &[]).unwrap();
        assert_matches_oracle(
            &case.name,
            &encoded,
            &case.input_ids,
            &case.mm_token_type_ids,
        );
    }
}

#[test]
fn decode_matches_transformers() {
    for case in &FIXTURE.decode {
        let text = TOKENIZER
            .decode(&case.ids, case.skip_special_tokens)
            .unwrap();
        assert_eq!(text, case.text, "{}", case.name);
    }
}

#[test]
fn streaming_concatenates_to_the_full_decode() {
    let prompts = FIXTURE
        .prompts
        .iter()
        .map(|c| (c.name.as_str(), &c.input_ids, false));
    let decodes = FIXTURE
        .decode
        .iter()
        .map(|c| (c.name.as_str(), &c.ids, c.skip_special_tokens));
    for (name, ids, skip) in prompts.chain(decodes) {
        let full = TOKENIZER.decode(ids, skip).unwrap();
        let pieces = stream(ids, skip);
        assert_eq!(pieces.concat(), full, "{name}");
        if !full.contains('\u{FFFD}') {
            assert!(
                pieces.iter().all(|p| !p.contains('\u{FFFD}')),
                "{name}: {pieces:?}"
            );
        }
    }
}

#[test]
fn streaming_holds_back_a_split_character() {
    let case = FIXTURE
        .decode
        .iter()
        .find(|c| c.name == "split_character")
        .unwrap();
    // The fixture picked the string because some token decodes to U+FFFD on its own.
    assert!(
        case.ids
            .iter()
            .any(|&id| TOKENIZER.decode(&[id], false).unwrap().contains('\u{FFFD}'))
    );
    let pieces = stream(&case.ids, false);
    assert!(
        pieces[..case.ids.len()].iter().any(String::is_empty),
        "{pieces:?}"
    );
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert_eq!(pieces.concat(), case.text);
}

#[test]
fn every_token_streams_like_its_decode() {
    let vocab = TOKENIZER.tokenizer().get_vocab_size(true) as u32;
    assert_eq!(vocab, 151_665);
    for id in 0..vocab {
        for skip in [false, true] {
            let full = TOKENIZER.decode(&[id], skip).unwrap();
            assert_eq!(stream(&[id], skip).concat(), full, "id {id}, skip {skip}");
        }
    }
}

#[test]
fn special_tokens_are_qwens() {
    assert_eq!(TOKENIZER.eos_token_ids(), [151_645, 151_643]);
    assert_eq!(TOKENIZER.pad_token_id(), Some(151_643));
    let vision = TOKENIZER.vision_tokens();
    assert_eq!(
        (vision.start, vision.image_pad, vision.end),
        (151_652, 151_655, 151_653)
    );
}

#[test]
fn builtin_template_is_the_checkpoints() {
    let file = fs::read_to_string(fixture_dir().join("chat_template.json")).unwrap();
    let file: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert_eq!(file["chat_template"], QWEN2_5_VL_CHAT_TEMPLATE);
    assert!(
        TOKENIZER
            .template()
            .origin()
            .ends_with("chat_template.json")
    );

    let case = &FIXTURE.prompts[0];
    let builtin = ChatTemplate::qwen2_5_vl()
        .render(&case.messages, true)
        .unwrap();
    assert_eq!(builtin, case.text);
}

#[test]
fn template_sources_in_transformers_order() {
    let message = [Message::text("user", "hi")];
    let render = |files: &[(&str, serde_json::Value)]| {
        let eos = ("generation_config.json", json!({ "eos_token_id": 151_645 }));
        let dir = checkpoint_with(&[files, &[eos]].concat());
        let tokenizer = ChatTokenizer::from_dir(dir.path()).unwrap();
        tokenizer.render(&message, false).unwrap()
    };
    let named = json!({ "chat_template": [
        { "name": "tool_use", "template": "tools" },
        { "name": "default", "template": "default {{ messages[0]['content'] }}" },
    ]});
    assert_eq!(
        render(&[("tokenizer_config.json", named.clone())]),
        "default hi"
    );
    let single = json!({ "chat_template": "single" });
    assert_eq!(
        render(&[
            ("tokenizer_config.json", named),
            ("chat_template.json", single)
        ]),
        "single"
    );
    let builtin = ChatTemplate::qwen2_5_vl().render(&message, false).unwrap();
    assert_eq!(render(&[]), builtin);
}

#[test]
fn named_templates_without_default_are_an_error() {
    let config = json!({ "chat_template": [{ "name": "tool_use", "template": "tools" }] });
    let dir = checkpoint_with(&[("tokenizer_config.json", config)]);
    let err = ChatTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("\"default\""), "{err}");
}

#[test]
fn templates_can_raise() {
    let template = ChatTemplate::new(
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}",
        "test",
    )
    .unwrap();
    let err = template
        .render(&[Message::text("assistant", "x")], false)
        .unwrap_err();
    assert!(err.to_string().contains("user first"), "{err}");
    assert_eq!(
        template
            .render(&[Message::text("user", "x")], false)
            .unwrap(),
        ""
    );
}

#[test]
fn eos_and_pad_from_either_file() {
    let dir = checkpoint_with(&[
        ("generation_config.json", json!({ "eos_token_id": 151_643 })),
        (
            "tokenizer_config.json",
            json!({ "eos_token": { "content": "<|im_end|>", "special": true } }),
        ),
    ]);
    let tokenizer = ChatTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tokenizer.eos_token_ids(), [151_643, 151_645]);
    assert_eq!(tokenizer.pad_token_id(), None);

    let dir = checkpoint_with(&[]);
    let err = ChatTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("no eos token"), "{err}");
}

#[test]
fn missing_tokenizer_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = ChatTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(err, PromptError::File(FileError::Io { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn tokenizer_without_vision_tokens_is_refused() {
    // A three-letter byte-level BPE with only two of the three vision tokens.
    let added = |id: u32, content: &str| {
        json!({ "id": id, "content": content, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true })
    };
    let tiny = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [added(3, "<|vision_start|>"), added(4, "<|vision_end|>")],
        "normalizer": null,
        "pre_tokenizer": { "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true },
        "post_processor": null,
        "decoder": { "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true },
        "model": { "type": "BPE", "vocab": { "a": 0, "b": 1, "c": 2 }, "merges": [] },
    });
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("tokenizer.json"), tiny.to_string()).unwrap();
    let err = ChatTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            PromptError::MissingVisionToken {
                token: "<|image_pad|>",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("<|image_pad|>"), "{err}");
}

#[test]
fn image_count_and_grids_are_checked() {
    let text = TOKENIZER
        .render(&[user_message(1, "q", PromptStyle::Direct)], true)
        .unwrap();
    let err = TOKENIZER.encode_prompt(&text, &[]).unwrap_err();
    assert!(
        matches!(
            err,
            PromptError::ImageCount {
                placeholders: 1,
                images: 0
            }
        ),
        "{err:?}"
    );
    let err = TOKENIZER
        .encode_prompt(&text, &[[1, 2, 2], [1, 2, 2]])
        .unwrap_err();
    assert!(
        matches!(
            err,
            PromptError::ImageCount {
                placeholders: 1,
                images: 2
            }
        ),
        "{err:?}"
    );
    let err = TOKENIZER.encode_prompt(&text, &[[1, 3, 4]]).unwrap_err();
    assert!(matches!(err, PromptError::Grid { index: 0, .. }), "{err:?}");

    let encoded = TOKENIZER.encode_prompt(&text, &[[1, 4, 6]]).unwrap();
    assert_eq!(
        encoded
            .mm_token_type_ids
            .iter()
            .filter(|&&m| m == 1)
            .count(),
        6
    );
}
