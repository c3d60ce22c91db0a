//! Parsing grounded completions: the `<think>` / `<rethink>` / `<answer>` segments, the boxes
//! written in them, and the mapping of those boxes to original-image pixels.
//!
//! GRIT needs boxes counted in two different ways, so there are two extractors:
//!
//! - [`compat_boxes`] reproduces the official reward code, which runs one regex over the text
//!   (`\b\d+,\s*\d+,\s*\d+,\s*\d+\b`, [`OFFICIAL_BOX_REGEX`]) with Python `re` semantics. The
//!   reward code uses it to count boxes exactly as the official trainer did, quirks included.
//! - [`structured_boxes`] (the *fixed* behaviour) reads the syntaxes models actually write,
//!   with labels and float coordinates, for evaluation and for the viewer.
//!
//! | input                                                  | compat                  | structured                         |
//! |--------------------------------------------------------|-------------------------|------------------------------------|
//! | `{"bbox_2d": [1, 2, 3, 4], "label": "cat"}`            | 1 box                   | 1 box, [`BoxSyntax::Json`], `cat`  |
//! | `[1, 2, 3, 4]`                                         | 1 box                   | 1 box, [`BoxSyntax::List`]         |
//! | `[[1,2,3,4],[5,6,7,8]]`                                | 2 boxes                 | 2 boxes, [`BoxSyntax::List`]       |
//! | `<ref>cat</ref><box>[[1,2,3,4]]</box>`                 | 1 box                   | 1 box, [`BoxSyntax::InternVl`], `cat` |
//! | `1,2,3,4,5,6,7,8` (a run of eight integers)            | 2 boxes                 | none (no brackets)                 |
//! | `[1,2,3,4,5,6,7,8]`                                    | 2 boxes                 | none (a list of eight numbers)     |
//! | `[0.5, 1.5, 2.5, 3.5]`                                 | none                    | 1 box, float coordinates           |
//! | `[1.5, 2, 3, 4]`                                       | 1 box: `5, 2, 3, 4`     | 1 box `[1.5, 2, 3, 4]`             |
//! | `[-1, 2, 3, 4]`                                        | 1 box: `1, 2, 3, 4`     | 1 box, flagged negative            |
//! | `[1, -2, 3, 4]`                                        | none                    | 1 box, flagged negative            |
//! | `[1 , 2, 3, 4]` (space before a comma)                 | none                    | 1 box                              |
//! | `١, ٢, ٣, ٤` (Arabic-Indic digits)                     | 1 box `[1, 2, 3, 4]`    | none (ASCII digits only)           |
//!
//! Every span is a byte range into the completion text and every box records the segment it
//! lies in ([`Region`]), so callers can reproduce rules such as "boxes before the first
//! `<rethink>`" or "boxes of the `<think>` segment". [`BoxFrame`] maps raw coordinates to
//! original-image pixels and flags degenerate boxes ([`BoxFlags`]).
//!
//! All types are plain data with serde derives: they are written to JSONL run files and read
//! back by the viewer.

mod compat;
mod frame;
mod segments;
mod structured;

use serde::{Deserialize, Serialize};
use std::ops::Range;

pub(crate) use compat::digit_value;
pub use compat::{CompatBox, OFFICIAL_BOX_REGEX, compat_boxes};
pub use frame::{BoxFlags, BoxFrame, Containment, DegenerateThresholds, ImageSize, PixelBox};
pub use segments::{Segment, SegmentKind, Segments};
pub use structured::{BoxSyntax, StructuredBox, structured_boxes};

/// Why generation of a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// It wrote an end token.
    Eos,
    /// Its text reached a stop string (`</answer>`).
    StopString,
    /// It hit the token limit.
    Length,
}

/// A half-open byte range `start..end` into the completion text, always on char boundaries.
///
/// A struct rather than `Range<usize>` because it is `Copy` and serializes as
/// `{"start": …, "end": …}`, which the viewer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    pub fn range(self) -> Range<usize> {
        self.start..self.end
    }

    pub fn len(self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(self, other: Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

/// Where a box was written: inside the body of a segment of that kind, or outside every segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Region {
    Think,
    Rethink,
    Answer,
    Outside,
}

impl From<SegmentKind> for Region {
    fn from(kind: SegmentKind) -> Self {
        match kind {
            SegmentKind::Think => Region::Think,
            SegmentKind::Rethink => Region::Rethink,
            SegmentKind::Answer => Region::Answer,
        }
    }
}

/// Everything this module reads from one completion, as written to run files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParsedCompletion {
    pub segments: Segments,
    /// The official answer (text after the first `<answer>` up to `</answer>` or the end),
    /// trimmed; `None` when there is no `<answer>`.
    pub answer: Option<String>,
    /// Think, rethink and answer each present once, in that order, and closed.
    pub complete: bool,
    /// Boxes as the official regex counts them.
    pub compat_boxes: Vec<CompatBox>,
    /// Boxes as written, with syntax, label and float coordinates.
    pub boxes: Vec<StructuredBox>,
}

impl ParsedCompletion {
    pub fn parse(text: &str) -> Self {
        let segments = Segments::parse(text);
        Self {
            answer: segments.answer_text(text).map(str::to_owned),
            complete: segments.is_complete(),
            compat_boxes: compat_boxes(text, &segments),
            boxes: structured_boxes(text, &segments),
            segments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_counts_two_boxes_in_think() {
        let text = "<think> I see two cats {\"bbox_2d\": [1, 2, 3, 4]} and [5, 6, 7, 8] </think>\n<rethink> two boxes </rethink>\n<answer> 2 </answer>";
        let parsed = ParsedCompletion::parse(text);
        assert!(parsed.complete);
        assert_eq!(parsed.answer.as_deref(), Some("2"));
        assert_eq!(parsed.compat_boxes.len(), 2);
        assert!(
            parsed
                .compat_boxes
                .iter()
                .all(|b| b.region == Region::Think)
        );
        assert_eq!(parsed.compat_boxes[0].coords, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(parsed.compat_boxes[1].coords, [5.0, 6.0, 7.0, 8.0]);
        assert_eq!(parsed.boxes.len(), 2);
        assert_eq!(parsed.boxes[0].syntax, BoxSyntax::Json);
        assert_eq!(parsed.boxes[1].syntax, BoxSyntax::List);
        assert!(parsed.boxes.iter().all(|b| b.region == Region::Think));
    }

    /// A structured box without its span and region.
    type Written = (BoxSyntax, Option<&'static str>, [f64; 4]);

    /// The rows of the table in the module documentation.
    #[test]
    fn module_table_holds() {
        let rows: &[(&str, &[&str], &[Written])] = &[
            (
                r#"{"bbox_2d": [1, 2, 3, 4], "label": "cat"}"#,
                &["1, 2, 3, 4"],
                &[(BoxSyntax::Json, Some("cat"), [1.0, 2.0, 3.0, 4.0])],
            ),
            (
                "[1, 2, 3, 4]",
                &["1, 2, 3, 4"],
                &[(BoxSyntax::List, None, [1.0, 2.0, 3.0, 4.0])],
            ),
            (
                "[[1,2,3,4],[5,6,7,8]]",
                &["1,2,3,4", "5,6,7,8"],
                &[
                    (BoxSyntax::List, None, [1.0, 2.0, 3.0, 4.0]),
                    (BoxSyntax::List, None, [5.0, 6.0, 7.0, 8.0]),
                ],
            ),
            (
                "<ref>cat</ref><box>[[1,2,3,4]]</box>",
                &["1,2,3,4"],
                &[(BoxSyntax::InternVl, Some("cat"), [1.0, 2.0, 3.0, 4.0])],
            ),
            ("1,2,3,4,5,6,7,8", &["1,2,3,4", "5,6,7,8"], &[]),
            ("[1,2,3,4,5,6,7,8]", &["1,2,3,4", "5,6,7,8"], &[]),
            (
                "[0.5, 1.5, 2.5, 3.5]",
                &[],
                &[(BoxSyntax::List, None, [0.5, 1.5, 2.5, 3.5])],
            ),
            (
                "[1.5, 2, 3, 4]",
                &["5, 2, 3, 4"],
                &[(BoxSyntax::List, None, [1.5, 2.0, 3.0, 4.0])],
            ),
            (
                "[-1, 2, 3, 4]",
                &["1, 2, 3, 4"],
                &[(BoxSyntax::List, None, [-1.0, 2.0, 3.0, 4.0])],
            ),
            (
                "[1, -2, 3, 4]",
                &[],
                &[(BoxSyntax::List, None, [1.0, -2.0, 3.0, 4.0])],
            ),
            (
                "[1 , 2, 3, 4]",
                &[],
                &[(BoxSyntax::List, None, [1.0, 2.0, 3.0, 4.0])],
            ),
            ("١, ٢, ٣, ٤", &["١, ٢, ٣, ٤"], &[]),
        ];
        for &(text, compat, structured) in rows {
            let parsed = ParsedCompletion::parse(text);
            let found: Vec<&str> = parsed
                .compat_boxes
                .iter()
                .map(|b| &text[b.span.range()])
                .collect();
            assert_eq!(found, compat, "compat on {text:?}");
            let found: Vec<_> = parsed
                .boxes
                .iter()
                .map(|b| (b.syntax, b.label.as_deref(), b.coords))
                .collect();
            assert_eq!(found, structured, "structured on {text:?}");
        }
    }

    #[test]
    fn empty_text_has_nothing() {
        let parsed = ParsedCompletion::parse("");
        assert!(parsed.segments.segments.is_empty());
        assert_eq!(parsed.answer, None);
        assert!(!parsed.complete);
        assert!(parsed.compat_boxes.is_empty());
        assert!(parsed.boxes.is_empty());
    }

    #[test]
    fn boxes_in_the_answer_and_outside() {
        let text =
            "[9, 9, 9, 9] <think> x </think><rethink> y </rethink><answer> [1, 2, 3, 4] </answer>";
        let parsed = ParsedCompletion::parse(text);
        let regions: Vec<_> = parsed.compat_boxes.iter().map(|b| b.region).collect();
        assert_eq!(regions, [Region::Outside, Region::Answer]);
        let regions: Vec<_> = parsed.boxes.iter().map(|b| b.region).collect();
        assert_eq!(regions, [Region::Outside, Region::Answer]);
        assert_eq!(parsed.answer.as_deref(), Some("[1, 2, 3, 4]"));
    }

    #[test]
    fn a_box_split_by_a_newline_is_still_one_box() {
        let text = "<think> [10, 20,\n 30, 40] </think>";
        let parsed = ParsedCompletion::parse(text);
        assert_eq!(parsed.compat_boxes.len(), 1);
        assert_eq!(parsed.compat_boxes[0].coords, [10.0, 20.0, 30.0, 40.0]);
        assert_eq!(parsed.boxes.len(), 1);
        assert_eq!(parsed.boxes[0].coords, [10.0, 20.0, 30.0, 40.0]);
        assert_eq!(&text[parsed.boxes[0].span.range()], "[10, 20,\n 30, 40]");
    }

    #[test]
    fn round_trips_through_json() {
        let text = "<think> <ref>cat</ref><box>[[1,2,3,4]]</box> </think><answer> 1";
        let parsed = ParsedCompletion::parse(text);
        let json = serde_json::to_string(&parsed).unwrap();
        let back: ParsedCompletion = serde_json::from_str(&json).unwrap();
        assert_eq!(back, parsed);
        assert!(json.contains("\"region\":\"think\""));
        assert!(json.contains("\"syntax\":\"intern_vl\""));
    }
}
