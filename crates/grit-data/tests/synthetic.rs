//! The synthetic shapes data set: determinism, geometry checked on the pixels, answers checked
//! against the question text and the boxes, balance, files on disk, traces against the parser
//! and the rewards, and the tokenizer through `ChatTokenizer`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::LazyLock;

use grit_data::completion::{ParsedCompletion, Region};
use grit_data::dataset::{CheckOptions, LoadOptions, check, load};
use grit_data::hub::ImageProcessor;
use grit_data::preprocess::{
    CLIP_MEAN, CLIP_STD, GRIT_MIN_PIXELS, PreprocessConfig, load_image, preprocess,
};
use grit_data::prompt::{ChatTokenizer, PromptStyle, user_message};
use grit_data::rewards::{
    self, Mode, RewardConfig, answer_format_reward,
    grounded_region_specific_thinking_format_reward_think_rethink, think_and_rethink_format_reward,
};
use grit_data::synthetic::{
    COUNT_DATASET, Category, Color, CountBy, Item, Object, Question, Relation, SPATIAL_DATASET,
    SPATIAL_MARGIN, Shape, ShapesConfig, build_tokenizer, generate, grounded_trace, splits,
    tokenizer_corpus, unresized, write_split, write_tokenizer_dir,
};

const SEED: u64 = 20_250_515;

static ITEMS: LazyLock<Vec<Item>> =
    LazyLock::new(|| generate(&ShapesConfig::default(), SEED, 500).unwrap());

fn counts(items: &[Item]) -> impl Iterator<Item = (&Item, usize)> {
    items
        .iter()
        .filter(|i| i.sample.dataset == COUNT_DATASET)
        .map(|i| (i, i.sample.answer.parse().unwrap()))
}

#[test]
fn same_seed_same_items_other_seed_other_items() {
    let config = ShapesConfig::default();
    let a = generate(&config, SEED, 40).unwrap();
    assert_eq!(a, generate(&config, SEED, 40).unwrap());
    assert_eq!(a[..10], generate(&config, SEED, 10).unwrap()[..]);
    let b = generate(&config, SEED + 1, 40).unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| x.image != y.image));
    assert_ne!(
        a.iter().map(|i| &i.sample).collect::<Vec<_>>(),
        b.iter().map(|i| &i.sample).collect::<Vec<_>>()
    );

    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_split(&a, one.path(), "train").unwrap();
    write_split(&generate(&config, SEED, 40).unwrap(), two.path(), "train").unwrap();
    let bytes = |dir: &Path, name: &str| fs::read(dir.join(name)).unwrap();
    assert_eq!(
        bytes(one.path(), "train.jsonl"),
        bytes(two.path(), "train.jsonl")
    );
    for item in &a {
        let name = format!("images/{}", item.sample.image);
        assert_eq!(bytes(one.path(), &name), bytes(two.path(), &name));
    }
}

/// Boxes inside the image, apart by at least 2 px, and equal to the extent of their colour's
/// pixels; no pixel of a shape colour outside a box of that colour.
#[test]
fn boxes_are_the_drawn_pixels() {
    for item in ITEMS.iter().take(200) {
        let (w, h) = item.image.dimensions();
        for (k, object) in item.objects.iter().enumerate() {
            let [x1, y1, x2, y2] = object.bbox;
            assert!(0.0 <= x1 && x1 < x2 && x2 <= f64::from(w), "{object:?}");
            assert!(0.0 <= y1 && y1 < y2 && y2 <= f64::from(h), "{object:?}");
            for other in &item.objects[k + 1..] {
                let [a1, b1, a2, b2] = other.bbox;
                let apart = x2 + 2.0 <= a1 || a2 + 2.0 <= x1 || y2 + 2.0 <= b1 || b2 + 2.0 <= y1;
                assert!(apart, "{object:?} touches {other:?}");
            }
        }
        let mut extents = vec![[u32::MAX, u32::MAX, 0, 0]; item.objects.len()];
        for (x, y, pixel) in item.image.enumerate_pixels() {
            let Some(color) = Color::ALL.into_iter().find(|c| c.rgb() == pixel.0) else {
                continue;
            };
            let (px, py) = (f64::from(x), f64::from(y));
            let owner = item.objects.iter().position(|o| {
                let [x1, y1, x2, y2] = o.bbox;
                o.color == color && x1 <= px && px < x2 && y1 <= py && py < y2
            });
            let owner = owner.unwrap_or_else(|| {
                panic!(
                    "{}: {color:?} pixel ({x}, {y}) in no box",
                    item.sample.image
                )
            });
            let e = &mut extents[owner];
            *e = [e[0].min(x), e[1].min(y), e[2].max(x + 1), e[3].max(y + 1)];
        }
        for (object, extent) in item.objects.iter().zip(extents) {
            assert_eq!(object.bbox, extent.map(f64::from), "{}", item.sample.image);
        }
    }
}

/// The objects a counting question's words name, read from the text alone.
fn named_by(question: &str, object: &Object) -> bool {
    let phrase = question
        .strip_prefix("How many ")
        .and_then(|q| q.strip_suffix("s are there?"))
        .unwrap_or_else(|| panic!("not a counting question: {question}"));
    phrase
        .split(' ')
        .all(|word| word == "shape" || word == object.shape.name() || word == object.color.name())
}

#[test]
fn counts_match_the_question_text() {
    for (item, count) in counts(&ITEMS) {
        let named: Vec<[f64; 4]> = item
            .objects
            .iter()
            .filter(|o| named_by(&item.sample.question, o))
            .map(|o| o.bbox)
            .collect();
        assert_eq!(named.len(), count, "{}", item.sample.question);
        assert_eq!(item.sample.gt_boxes(), named);
        assert!((1..=4).contains(&item.objects.len()));
    }
}

#[test]
fn spatial_answers_follow_the_centres() {
    let relations = [
        ("to the left of", Relation::LeftOf),
        ("to the right of", Relation::RightOf),
        ("above", Relation::Above),
        ("below", Relation::Below),
    ];
    let spatial = ITEMS.iter().filter(|i| i.sample.dataset == SPATIAL_DATASET);
    for item in spatial {
        let q = &item.sample.question;
        let body = q
            .strip_prefix("Is the ")
            .unwrap()
            .strip_suffix('?')
            .unwrap();
        let (subject, phrase, reference) = relations
            .iter()
            .find_map(|(phrase, _)| {
                let (s, r) = body.split_once(&format!(" {phrase} the "))?;
                Some((s, *phrase, r))
            })
            .unwrap_or_else(|| panic!("no relation in {q}"));
        for label in [subject, reference] {
            let n = item.objects.iter().filter(|o| o.label() == label).count();
            assert_eq!(n, 1, "{label} not unique in {q}");
        }
        let [s, r] = item.sample.gt_boxes() else {
            panic!("{q}: two boxes expected")
        };
        let center = |b: &[f64; 4]| [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0];
        let ([sx, sy], [rx, ry]) = (center(s), center(r));
        let lead = match phrase {
            "to the left of" => rx - sx,
            "to the right of" => sx - rx,
            "above" => ry - sy,
            _ => sy - ry,
        };
        assert!(lead.abs() >= SPATIAL_MARGIN, "{q}: {lead}");
        let expected = if lead > 0.0 { "yes" } else { "no" };
        assert_eq!(item.sample.answer, expected, "{q}");
    }
}

#[test]
fn answers_are_balanced() {
    let n = ITEMS.len() as f64;
    let mut by_count = BTreeMap::<usize, usize>::new();
    for (_, count) in counts(&ITEMS) {
        *by_count.entry(count).or_default() += 1;
    }
    let counting: usize = by_count.values().sum();
    let yes = ITEMS.iter().filter(|i| i.sample.answer == "yes").count();
    let spatial = ITEMS.len() - counting;
    println!("counting {counting} by count {by_count:?}; spatial {spatial}, yes {yes}");
    assert!((0.52..=0.68).contains(&(counting as f64 / n)));
    assert_eq!(
        by_count.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    for share in by_count.values().map(|&c| c as f64 / counting as f64) {
        assert!((0.1..=0.3).contains(&share), "{by_count:?}");
    }
    assert!((0.4..=0.6).contains(&(yes as f64 / spatial as f64)));
    let forms = counts(&ITEMS).fold([0; 3], |mut forms, (item, _)| {
        let q = &item.sample.question;
        let form = if q.contains(" shapes ") {
            0
        } else if q.split(' ').count() == 6 {
            1
        } else {
            2
        };
        forms[form] += 1;
        forms
    });
    assert!(forms.iter().all(|&f| f > counting / 5), "{forms:?}");
}

#[test]
fn min_count_removes_the_smaller_counts_only() {
    let config = ShapesConfig {
        min_count: 2,
        ..Default::default()
    };
    let items = generate(&config, SEED, 300).unwrap();
    let mut by_count = BTreeMap::<usize, usize>::new();
    for (_, count) in counts(&items) {
        *by_count.entry(count).or_default() += 1;
    }
    assert_eq!(by_count.keys().copied().collect::<Vec<_>>(), [2, 3, 4]);
    assert!(items.iter().any(|i| i.sample.dataset != COUNT_DATASET));
}

#[test]
fn count_by_picks_the_question_forms() {
    let config = ShapesConfig {
        count_by: vec![CountBy::Color],
        counting_fraction: 1.0,
        ..Default::default()
    };
    for (item, _) in counts(&generate(&config, SEED, 100).unwrap()) {
        let q = &item.sample.question;
        assert!(q.contains(" shapes are there?"), "{q}");
    }
}

#[test]
fn written_split_loads_and_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let items = &ITEMS[..30];
    let source = write_split(items, dir.path(), "train").unwrap();
    assert_eq!(source.file, dir.path().join("train.jsonl"));
    assert!(!dir.path().join("train.jsonl.partial").exists());
    let loaded = load(std::slice::from_ref(&source), LoadOptions::default()).unwrap();
    assert_eq!(loaded.records.len(), items.len());
    for (record, item) in loaded.records.iter().zip(items) {
        assert_eq!(record.sample, item.sample);
        assert_eq!(load_image(&record.image_path).unwrap(), item.image);
    }
    let options = CheckOptions {
        decode: true,
        ..Default::default()
    };
    let report = check(&[source], &options);
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.samples, report.images), (30, 30));
}

#[test]
fn splits_are_named_disjoint_and_reproducible() {
    let config = ShapesConfig::default();
    let s = splits(&config, SEED, 20, 10).unwrap();
    assert_eq!((s.train.len(), s.heldout.len()), (20, 10));
    assert_eq!(s.train[3].sample.image, "train_00003.png");
    assert_eq!(s.heldout[9].sample.image, "heldout_00009.png");
    for held in &s.heldout {
        assert!(s.train.iter().all(|t| t.image != held.image));
    }
    assert_eq!(s, splits(&config, SEED, 20, 10).unwrap());
    // Growing the held-out set leaves the training set alone.
    assert_eq!(s.train, splits(&config, SEED, 20, 15).unwrap().train);
}

/// A hand-made item: only objects and question matter to a trace.
fn item(objects: Vec<Object>, question: Question) -> Item {
    let mut item = ITEMS[0].clone();
    item.objects = objects;
    item.question = question;
    item
}

fn object(shape: Shape, color: Color, bbox: [f64; 4]) -> Object {
    Object { shape, color, bbox }
}

#[test]
fn traces_have_the_documented_shape() {
    let red_circles = Question::Count(Category {
        color: Some(Color::Red),
        shape: Some(Shape::Circle),
    });
    let objects = vec![
        object(Shape::Circle, Color::Red, [10.0, 20.0, 30.0, 40.0]),
        object(Shape::Square, Color::Blue, [50.0, 20.0, 70.0, 40.0]),
        object(Shape::Circle, Color::Red, [50.0, 60.0, 70.0, 80.0]),
    ];
    assert_eq!(
        grounded_trace(&item(objects.clone(), red_circles), [1.0, 1.0]),
        "<think> red circle [10,20,30,40] red circle [50,60,70,80] </think>\n\
         <rethink> 2 red circles </rethink>\n<answer> 2 </answer>"
    );
    let circles = Question::Count(Category {
        color: None,
        shape: Some(Shape::Circle),
    });
    assert_eq!(
        grounded_trace(&item(objects[..2].to_vec(), circles), [2.0, 0.5]),
        "<think> red circle [20,10,60,20] </think>\n<rethink> 1 circle </rethink>\n\
         <answer> 1 </answer>"
    );
    let green_shapes = Question::Count(Category {
        color: Some(Color::Green),
        shape: None,
    });
    assert_eq!(
        grounded_trace(&item(objects.clone(), green_shapes), [1.0, 1.0]),
        "<think> no green shape </think>\n<rethink> 0 green shapes </rethink>\n\
         <answer> 0 </answer>"
    );
    let left_of = |relation| Question::Spatial {
        subject: 0,
        relation,
        reference: 1,
    };
    assert_eq!(
        grounded_trace(
            &item(objects.clone(), left_of(Relation::LeftOf)),
            [1.0, 1.0]
        ),
        "<think> red circle [10,20,30,40] blue square [50,20,70,40] </think>\n\
         <rethink> the red circle is left of the blue square </rethink>\n<answer> yes </answer>"
    );
    assert_eq!(
        grounded_trace(&item(objects, left_of(Relation::RightOf)), [1.0, 1.0]),
        "<think> red circle [10,20,30,40] blue square [50,20,70,40] </think>\n\
         <rethink> the red circle is not right of the blue square </rethink>\n\
         <answer> no </answer>"
    );
}

/// Every trace parses into think / rethink / answer with the referents' boxes in the model's
/// frame, and earns the most the format rewards give.
#[test]
fn traces_parse_and_earn_the_format_rewards() {
    let mut config = RewardConfig::new(Mode::Fixed);
    config.counting_datasets = vec![COUNT_DATASET.to_owned()];
    for scale in [[1.0, 1.0], [2.0, 0.5]] {
        for item in ITEMS.iter() {
            let sample = &item.sample;
            let trace = grounded_trace(item, scale);
            let parsed = ParsedCompletion::parse(&trace);
            assert!(parsed.complete, "{trace}");
            assert_eq!(parsed.answer.as_deref(), Some(sample.answer.as_str()));
            let written: Vec<[f64; 4]> = parsed.compat_boxes.iter().map(|b| b.coords).collect();
            let expected: Vec<[f64; 4]> = sample
                .gt_boxes()
                .iter()
                .map(|b| {
                    [
                        b[0] * scale[0],
                        b[1] * scale[1],
                        b[2] * scale[0],
                        b[3] * scale[1],
                    ]
                    .map(f64::round)
                })
                .collect();
            assert_eq!(written, expected, "{trace}");
            assert!(
                parsed
                    .compat_boxes
                    .iter()
                    .all(|b| b.region == Region::Think)
            );

            assert_eq!(answer_format_reward(&trace), 0.5);
            assert_eq!(think_and_rethink_format_reward(Mode::Fixed, &trace), 0.5);
            let reward_sample =
                rewards::Sample::new(&sample.dataset, &sample.answer, &sample.question);
            let grounded = grounded_region_specific_thinking_format_reward_think_rethink(
                &config,
                &trace,
                &reward_sample,
                &sample.dataset,
            )
            .unwrap();
            let best = match (sample.dataset.as_str(), sample.answer.as_str()) {
                (SPATIAL_DATASET, _) => 0.5,
                (_, "0") => 1.0,
                _ => 1.5,
            };
            assert_eq!(grounded, best, "{trace}");
        }
    }
}

#[test]
fn tokenizer_round_trips_and_keeps_traces_short() {
    let corpus = tokenizer_corpus(&ITEMS);
    assert!(corpus[0].starts_with("<|im_start|>system\n"));
    assert!(corpus[0].contains("<|image_pad|>") && corpus[0].ends_with("</answer>"));
    let tokenizer = build_tokenizer(&corpus, 512);
    assert_eq!(tokenizer.get_vocab_size(true), 512);
    let again = build_tokenizer(&corpus, 512);
    assert_eq!(
        tokenizer.to_string(false).unwrap(),
        again.to_string(false).unwrap()
    );

    let dir = tempfile::tempdir().unwrap();
    write_tokenizer_dir(
        dir.path(),
        &tokenizer,
        ImageProcessor::Qwen2_5Vl(&unresized(112)),
    )
    .unwrap();
    let preprocess_config = PreprocessConfig::from_checkpoint_dir(dir.path()).unwrap();
    assert_eq!(
        preprocess_config,
        PreprocessConfig {
            min_pixels: GRIT_MIN_PIXELS,
            max_pixels: 112 * 112,
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
        }
    );
    let chat = ChatTokenizer::from_dir(dir.path()).unwrap();
    let id = |token: &str| tokenizer.token_to_id(token).unwrap();
    assert_eq!(
        chat.eos_token_ids(),
        [id("<|im_end|>"), id("<|endoftext|>")]
    );
    assert_eq!(chat.pad_token_id(), Some(id("<|endoftext|>")));

    let item = &ITEMS[0];
    let processed = preprocess(&item.image, &preprocess_config).unwrap();
    assert_eq!(processed.processed_size, (112, 112));
    let message = user_message(1, &item.sample.question, PromptStyle::Grit);
    let text = chat.render(&[message], true).unwrap();
    let prompt = chat.encode_prompt(&text, &[processed.grid_thw]).unwrap();
    let pads = prompt.mm_token_type_ids.iter().filter(|&&m| m == 1).count();
    assert_eq!(pads, 16);

    let mut lengths = BTreeMap::<String, Vec<usize>>::new();
    for item in ITEMS.iter() {
        let trace = grounded_trace(item, [1.0, 1.0]);
        let ids = chat.encode(&trace).unwrap();
        assert_eq!(chat.decode(&ids, true).unwrap(), trace);
        let key = match item.sample.dataset.as_str() {
            COUNT_DATASET => format!("count {}", item.sample.answer),
            _ => "spatial".to_owned(),
        };
        lengths.entry(key).or_default().push(ids.len());
    }
    println!(
        "prompt {} tokens ({pads} image pads), trace tokens (mean, max):",
        prompt.input_ids.len()
    );
    for (key, ls) in &lengths {
        let mean = ls.iter().sum::<usize>() as f64 / ls.len() as f64;
        println!("  {key}: {mean:.1}, {}", ls.iter().max().unwrap());
    }
    let two = &lengths["count 2"];
    assert!(two.iter().sum::<usize>() / two.len() < 40, "{two:?}");
}
