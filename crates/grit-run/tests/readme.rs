//! The README's run-directory table is checked against the rows the programs write: each file's
//! line lists exactly the fields of its row type, in backticks.

use grit_run::{EvalRow, Report, RolloutRow, StepMetrics, TrainerState};
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A deserializer that only records the field names a struct asks for.
struct FieldNames<'a>(&'a mut Vec<&'static str>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.0.extend_from_slice(fields);
        Err(Stop)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn fields<'de, T: Deserialize<'de>>() -> Vec<String> {
    let mut names = Vec::new();
    let _ = T::deserialize(FieldNames(&mut names));
    let mut names: Vec<String> = names.into_iter().map(str::to_owned).collect();
    names.sort();
    names
}

/// The backticked words after the first cell of the table line that starts with `| {file} |`.
fn documented(readme: &str, file: &str) -> Vec<String> {
    let start = format!("| `{file}` |");
    let line = readme
        .lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("README has no run-directory line for `{file}`"));
    let mut names: Vec<String> = line[start.len()..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_readme_lists_every_field_of_every_run_file() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for (file, expected) in [
        ("metrics.jsonl", fields::<StepMetrics>()),
        ("rollouts.jsonl", fields::<RolloutRow>()),
        ("eval/<name>/samples.jsonl", fields::<EvalRow>()),
        (
            "checkpoints/step-NNNNNN/trainer_state.json",
            fields::<TrainerState>(),
        ),
        ("report.json", fields::<Report>()),
    ] {
        assert!(!expected.is_empty(), "{file}");
        assert_eq!(
            documented(&readme, file),
            expected,
            "README's line for `{file}`"
        );
    }
}
