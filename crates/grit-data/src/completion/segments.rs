//! Splitting a completion into `<think>`, `<rethink>` and `<answer>` segments.
//!
//! The tags are plain text written by the model, so the splitter must accept anything: missing
//! closing tags, repeated tags, stray closing tags and text outside every tag. The rules:
//!
//! - Tags are matched exactly and case-sensitively (`<think>`, `</think>`, …), as the official
//!   code does with `in` / `split`. `< think >` or `<THINK>` are plain text.
//! - Segments never overlap. An opening tag of any kind ends a `<think>` or `<rethink>` segment
//!   that is still open (it stays unclosed) and starts a new segment.
//! - Inside `<answer>` only `</answer>` is a tag. This is the official answer rule (text after the
//!   first `<answer>` up to `</answer>` or the end, `split('<answer>', 1)[-1].split('</answer>')[0]`),
//!   so the first answer segment's body is exactly the text the official judge saw.
//! - A closing tag that does not close the open segment (or comes when none is open) is plain
//!   text.

use super::{Region, Span};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    Think,
    Rethink,
    Answer,
}

impl SegmentKind {
    const ALL: [SegmentKind; 3] = [
        SegmentKind::Think,
        SegmentKind::Rethink,
        SegmentKind::Answer,
    ];

    pub const fn open_tag(self) -> &'static str {
        match self {
            SegmentKind::Think => "<think>",
            SegmentKind::Rethink => "<rethink>",
            SegmentKind::Answer => "<answer>",
        }
    }

    pub const fn close_tag(self) -> &'static str {
        match self {
            SegmentKind::Think => "</think>",
            SegmentKind::Rethink => "</rethink>",
            SegmentKind::Answer => "</answer>",
        }
    }
}

/// One tagged region of the completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub kind: SegmentKind,
    /// From the opening tag to the end of the closing tag; for an unclosed segment, to the end
    /// of its body.
    pub outer: Span,
    /// The text between the tags (untrimmed).
    pub body: Span,
    /// Whether the segment's own closing tag ended it (rather than another opening tag or the
    /// end of the text).
    pub closed: bool,
}

/// The segments of a completion, in text order and non-overlapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Segments {
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Open(SegmentKind),
    Close(SegmentKind),
}

impl Tag {
    fn text(self) -> &'static str {
        match self {
            Tag::Open(kind) => kind.open_tag(),
            Tag::Close(kind) => kind.close_tag(),
        }
    }
}

/// Every tag occurrence with its byte offset. No tag is a substring of another (`<rethink>`
/// does not contain `<think>`), so checking the prefixes at each `<` finds them all.
fn tags(text: &str) -> impl Iterator<Item = (usize, Tag)> + '_ {
    text.match_indices('<').filter_map(|(at, _)| {
        let rest = &text[at..];
        SegmentKind::ALL
            .into_iter()
            .flat_map(|kind| [Tag::Open(kind), Tag::Close(kind)])
            .find(|tag| rest.starts_with(tag.text()))
            .map(|tag| (at, tag))
    })
}

/// A segment whose opening tag has been seen.
struct Open {
    kind: SegmentKind,
    tag_start: usize,
    body_start: usize,
}

impl Open {
    fn end(self, body_end: usize, outer_end: usize, closed: bool) -> Segment {
        Segment {
            kind: self.kind,
            outer: Span::new(self.tag_start, outer_end),
            body: Span::new(self.body_start, body_end),
            closed,
        }
    }
}

impl Segments {
    pub fn parse(text: &str) -> Self {
        let mut segments = Vec::new();
        let mut open: Option<Open> = None;
        for (at, tag) in tags(text) {
            let tag_end = at + tag.text().len();
            open = match (open, tag) {
                (Some(current), Tag::Close(kind)) if kind == current.kind => {
                    segments.push(current.end(at, tag_end, true));
                    None
                }
                // The answer runs to `</answer>` whatever else it contains.
                (Some(current), _) if current.kind == SegmentKind::Answer => Some(current),
                // A closing tag that closes nothing is text.
                (current, Tag::Close(_)) => current,
                (current, Tag::Open(kind)) => {
                    if let Some(current) = current {
                        segments.push(current.end(at, at, false));
                    }
                    Some(Open {
                        kind,
                        tag_start: at,
                        body_start: tag_end,
                    })
                }
            };
        }
        if let Some(current) = open {
            segments.push(current.end(text.len(), text.len(), false));
        }
        Self { segments }
    }

    /// The first answer segment: its body is the official answer text.
    pub fn answer(&self) -> Option<&Segment> {
        self.segments.iter().find(|s| s.kind == SegmentKind::Answer)
    }

    /// The official answer text, trimmed of surrounding whitespace; `None` without `<answer>`.
    pub fn answer_text<'a>(&self, text: &'a str) -> Option<&'a str> {
        self.answer().map(|s| text[s.body.range()].trim())
    }

    /// Think, rethink and answer each present once, in that order, each closed. Text outside
    /// the segments (and stray closing tags) does not matter.
    pub fn is_complete(&self) -> bool {
        self.segments.len() == SegmentKind::ALL.len()
            && self
                .segments
                .iter()
                .zip(SegmentKind::ALL)
                .all(|(segment, kind)| segment.kind == kind && segment.closed)
    }

    /// The region a byte offset lies in: the kind of the segment whose body contains it, or
    /// [`Region::Outside`] (which includes the tags themselves).
    pub fn region_at(&self, offset: usize) -> Region {
        // Segments are sorted and disjoint, so the candidate is the last one starting at or
        // before `offset`.
        let after = self.segments.partition_point(|s| s.outer.start <= offset);
        match after.checked_sub(1).map(|i| &self.segments[i]) {
            Some(s) if s.body.start <= offset && offset < s.body.end => s.kind.into(),
            _ => Region::Outside,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_and_bodies(text: &str) -> Vec<(SegmentKind, &str, bool)> {
        Segments::parse(text)
            .segments
            .iter()
            .map(|s| (s.kind, &text[s.body.range()], s.closed))
            .collect()
    }

    use SegmentKind::{Answer, Rethink, Think};

    #[test]
    fn well_formed_completion() {
        let text = "<think> a </think>\n<rethink> b </rethink>\n<answer> 5 </answer>";
        let segments = Segments::parse(text);
        assert_eq!(
            kinds_and_bodies(text),
            [
                (Think, " a ", true),
                (Rethink, " b ", true),
                (Answer, " 5 ", true)
            ]
        );
        assert!(segments.is_complete());
        assert_eq!(segments.answer_text(text), Some("5"));
        let think = segments.segments[0];
        assert_eq!(&text[think.outer.range()], "<think> a </think>");
    }

    #[test]
    fn empty_text() {
        let segments = Segments::parse("");
        assert!(segments.segments.is_empty());
        assert!(!segments.is_complete());
        assert_eq!(segments.answer_text(""), None);
        assert_eq!(segments.region_at(0), Region::Outside);
    }

    #[test]
    fn unclosed_segments_end_at_the_next_opening_tag_or_the_end() {
        let text = "<think> a <rethink> b </rethink><answer> 5";
        assert_eq!(
            kinds_and_bodies(text),
            [
                (Think, " a ", false),
                (Rethink, " b ", true),
                (Answer, " 5", false)
            ]
        );
        let segments = Segments::parse(text);
        assert!(!segments.is_complete());
        assert_eq!(segments.answer_text(text), Some("5"));
        let think = segments.segments[0];
        assert_eq!(&text[think.outer.range()], "<think> a ");
    }

    #[test]
    fn answer_twice_takes_the_first_up_to_its_close() {
        let text = "<answer> 1 </answer> <answer> 2 </answer>";
        assert_eq!(
            kinds_and_bodies(text),
            [(Answer, " 1 ", true), (Answer, " 2 ", true)]
        );
        assert_eq!(Segments::parse(text).answer_text(text), Some("1"));
    }

    #[test]
    fn answer_swallows_tags_until_its_close_like_the_official_split() {
        // split('<answer>', 1)[-1].split('</answer>')[0] == " 1 <answer> 2 <think> x "
        let text = "<answer> 1 <answer> 2 <think> x </answer> tail";
        assert_eq!(
            kinds_and_bodies(text),
            [(Answer, " 1 <answer> 2 <think> x ", true)]
        );
    }

    #[test]
    fn repeated_and_stray_tags() {
        let text = "</think> pre <think> a <think> b </rethink> </think> post </answer>";
        assert_eq!(
            kinds_and_bodies(text),
            [(Think, " a ", false), (Think, " b </rethink> ", true)]
        );
        let segments = Segments::parse(text);
        assert!(!segments.is_complete());
        assert_eq!(segments.answer_text(text), None);
    }

    #[test]
    fn out_of_order_is_not_complete() {
        let text = "<rethink> b </rethink><think> a </think><answer> 5 </answer>";
        assert!(!Segments::parse(text).is_complete());
        let text =
            "<think> a </think><rethink> b </rethink><rethink> c </rethink><answer> 5 </answer>";
        assert!(!Segments::parse(text).is_complete());
        let text = "<think> a </think><answer> 5 </answer>";
        assert!(!Segments::parse(text).is_complete());
    }

    #[test]
    fn text_outside_tags_does_not_break_completeness() {
        let text =
            "assistant\n<think> a </think> so <rethink> b </rethink> thus <answer> 5 </answer> bye";
        assert!(Segments::parse(text).is_complete());
    }

    #[test]
    fn near_miss_tags_are_text() {
        let text = "< think > <THINK> <think > <thinking>";
        assert!(Segments::parse(text).segments.is_empty());
    }

    #[test]
    fn region_lookup() {
        let text = "x <think> a </think> y <answer> b";
        let segments = Segments::parse(text);
        let at = |needle: &str| segments.region_at(text.find(needle).unwrap());
        assert_eq!(at("x"), Region::Outside);
        assert_eq!(at("a"), Region::Think);
        assert_eq!(at("</think>"), Region::Outside);
        assert_eq!(at("y"), Region::Outside);
        assert_eq!(at(" b"), Region::Answer);
        assert_eq!(segments.region_at(text.len()), Region::Outside);
    }

    #[test]
    fn multibyte_text_around_tags() {
        let text = "é<think>猫 🐱</think>ü<answer>٣</answer>";
        assert_eq!(
            kinds_and_bodies(text),
            [(Think, "猫 🐱", true), (Answer, "٣", true)]
        );
    }
}
