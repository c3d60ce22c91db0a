//! Boxes as models write them (the *fixed* extractor), for evaluation and the viewer.
//!
//! A box is a bracketed list of exactly four numbers, `[x1, y1, x2, y2]`; a list of such lists,
//! `[[…], […]]`, is a group of boxes. Numbers are ASCII JSON-style, `-?\d+(\.\d+)?` (no exponent,
//! no `+`); negatives are kept (and flagged later by [`super::BoxFlags::negative`]). Whitespace
//! between tokens is ASCII whitespace, newlines included. The closing bracket of a group may be
//! missing (truncated output): the group then ends after its last complete box.
//!
//! There is no JSON parser: a model's "JSON" is often invalid (single quotes, repeated keys,
//! trailing text, truncation), so the syntax around a group is read locally instead:
//!
//! - `"key": group` (key in double or single quotes, or bare) is [`BoxSyntax::Json`], whatever
//!   the key. Its label is the string value of a `label` key right after the group
//!   (`, "label": "cat"`), else right before the key (`"label": "cat", `). After-first matches
//!   the official few-shot example, one object with alternating `bbox_2d` / `label` keys.
//! - `<ref>label</ref><box>group</box>` is [`BoxSyntax::InternVl`] (the `<ref>` part is optional;
//!   whitespace between the pieces is allowed). The label applies to every box of the group.
//! - Any other group is [`BoxSyntax::List`], without a label.
//!
//! Labels are trimmed and otherwise verbatim (escape sequences are not decoded); a quoted
//! label must close before the end of its line.

use super::{Region, Segments, Span};
use serde::{Deserialize, Serialize};

/// How a box was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoxSyntax {
    /// The value of a key, as in Qwen2.5-VL's `{"bbox_2d": [x1, y1, x2, y2], "label": "…"}`.
    Json,
    /// A bare list, `[x1, y1, x2, y2]` or `[[…], […]]`.
    List,
    /// InternVL's `<ref>label</ref><box>[[x1, y1, x2, y2]]</box>`.
    InternVl,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructuredBox {
    /// The four-number list, brackets included.
    pub span: Span,
    pub region: Region,
    pub syntax: BoxSyntax,
    pub label: Option<String>,
    /// `[x1, y1, x2, y2]` as written, in the model's frame; values beyond `f64` saturate.
    pub coords: [f64; 4],
}

/// Every box written in one of the syntaxes above, in text order.
pub fn structured_boxes(text: &str, segments: &Segments) -> Vec<StructuredBox> {
    let mut boxes = Vec::new();
    let mut members = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find('[') {
        let open = from + offset;
        members.clear();
        let Some(end) = group(text, open, &mut members) else {
            from = open + 1;
            continue;
        };
        let (syntax, label) = context(text, open, end);
        boxes.extend(members.iter().map(|&(span, coords)| StructuredBox {
            span,
            region: segments.region_at(span.start),
            syntax,
            label: label.map(str::to_owned),
            coords,
        }));
        from = end;
    }
    boxes
}

/// A group at `open` (a `[`): either one box, or a list of boxes. Pushes the boxes and returns
/// the end of the group.
fn group(text: &str, open: usize, members: &mut Vec<(Span, [f64; 4])>) -> Option<usize> {
    let bytes = text.as_bytes();
    let first = skip_space(bytes, open + 1);
    if bytes.get(first) != Some(&b'[') {
        let (coords, end) = four_numbers(text, open)?;
        members.push((Span::new(open, end), coords));
        return Some(end);
    }
    let (coords, mut end) = four_numbers(text, first)?;
    members.push((Span::new(first, end), coords));
    loop {
        let comma = skip_space(bytes, end);
        if bytes.get(comma) != Some(&b',') {
            break;
        }
        let next = skip_space(bytes, comma + 1);
        let Some((coords, next_end)) = four_numbers(text, next) else {
            break;
        };
        members.push((Span::new(next, next_end), coords));
        end = next_end;
    }
    let close = skip_space(bytes, end);
    Some(if bytes.get(close) == Some(&b']') {
        close + 1
    } else {
        end
    })
}

/// `[n, n, n, n]` at `open`: the numbers and the end of the list.
fn four_numbers(text: &str, open: usize) -> Option<([f64; 4], usize)> {
    let bytes = text.as_bytes();
    if bytes.get(open) != Some(&b'[') {
        return None;
    }
    let mut coords = [0.0; 4];
    let mut at = open + 1;
    for (i, coord) in coords.iter_mut().enumerate() {
        let start = skip_space(bytes, at);
        let end = number_end(bytes, start)?;
        *coord = text[start..end]
            .parse::<f64>()
            .ok()?
            .clamp(f64::MIN, f64::MAX);
        let separator = skip_space(bytes, end);
        let expected = if i == 3 { b']' } else { b',' };
        if bytes.get(separator) != Some(&expected) {
            return None;
        }
        at = separator + 1;
    }
    Some((coords, at))
}

/// The end of `-?\d+(\.\d+)?` starting at `start`.
fn number_end(bytes: &[u8], start: usize) -> Option<usize> {
    let digits_from = |at: usize| {
        at + bytes[at.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int_start = if bytes.get(start) == Some(&b'-') {
        start + 1
    } else {
        start
    };
    let int_end = digits_from(int_start);
    if int_end == int_start {
        return None;
    }
    if bytes.get(int_end) == Some(&b'.') {
        let frac_end = digits_from(int_end + 1);
        if frac_end > int_end + 1 {
            return Some(frac_end);
        }
    }
    Some(int_end)
}

fn skip_space(bytes: &[u8], at: usize) -> usize {
    at + bytes[at.min(bytes.len())..]
        .iter()
        .take_while(|b| b.is_ascii_whitespace())
        .count()
}

fn trim_start_space(text: &str) -> &str {
    text.trim_start_matches(|c: char| c.is_ascii_whitespace())
}

fn trim_end_space(text: &str) -> &str {
    text.trim_end_matches(|c: char| c.is_ascii_whitespace())
}

/// The syntax and label of the group spanning `open..end`, from the text around it.
fn context(text: &str, open: usize, end: usize) -> (BoxSyntax, Option<&str>) {
    let before = trim_end_space(&text[..open]);
    if let Some(before_box) = before.strip_suffix("<box>") {
        return (BoxSyntax::InternVl, ref_label(before_box));
    }
    if let Some(before_colon) = before.strip_suffix(':')
        && let Some((_, key_start)) = key_before(before_colon)
    {
        let label = label_after(&text[end..]).or_else(|| label_before(&text[..key_start]));
        return (BoxSyntax::Json, label);
    }
    (BoxSyntax::List, None)
}

/// The label of `<ref>label</ref>` ending `before` (modulo whitespace).
fn ref_label(before: &str) -> Option<&str> {
    let inside = trim_end_space(before).strip_suffix("</ref>")?;
    let start = inside.rfind("<ref>")? + "<ref>".len();
    Some(inside[start..].trim())
}

/// A key ending `before` (modulo whitespace): quoted, or a bare identifier that follows `{` or
/// `,` (so that prose such as `the box is: [1, 2, 3, 4]` stays a bare list). Returns the key and
/// the offset where it starts.
fn key_before(before: &str) -> Option<(&str, usize)> {
    let before = trim_end_space(before);
    if let Some(quoted) = quoted_before(before) {
        return Some(quoted);
    }
    let start = before
        .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
        .len();
    let in_object = trim_end_space(&before[..start]).ends_with(['{', ',']);
    (start < before.len() && in_object).then(|| (&before[start..], start))
}

/// A quoted string ending `before` exactly, on one line: its contents and the offset of its
/// opening quote. Staying on the line keeps the look-back short.
fn quoted_before(before: &str) -> Option<(&str, usize)> {
    let quote = before
        .chars()
        .next_back()
        .filter(|&c| c == '"' || c == '\'')?;
    let body = &before[..before.len() - 1];
    let line_start = body.rfind('\n').map_or(0, |at| at + 1);
    let open = line_start + body[line_start..].rfind(quote)?;
    Some((&body[open + 1..], open))
}

/// `, "label": "value"` at the start of `after` (modulo whitespace).
fn label_after(after: &str) -> Option<&str> {
    let after = trim_start_space(trim_start_space(after).strip_prefix(',')?);
    let after = trim_start_space(trim_start_space(strip_key(after, "label")?).strip_prefix(':')?);
    let quote = after.chars().next().filter(|&c| c == '"' || c == '\'')?;
    let body = &after[1..];
    let close = closing_quote(body, quote)?;
    Some(body[..close].trim())
}

/// `"label": "value", ` at the end of `before` (modulo whitespace).
fn label_before(before: &str) -> Option<&str> {
    let before = trim_end_space(trim_end_space(before).strip_suffix(',')?);
    let (value, value_start) = quoted_before(before)?;
    let before_value = trim_end_space(&before[..value_start]).strip_suffix(':')?;
    let (key, _) = key_before(before_value)?;
    (key == "label").then(|| value.trim())
}

/// `text` after a leading `key`, quoted (either quote) or bare.
fn strip_key<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    for quote in ['"', '\''] {
        if let Some(rest) = text.strip_prefix(quote) {
            return rest.strip_prefix(key)?.strip_prefix(quote);
        }
    }
    let rest = text.strip_prefix(key)?;
    let continues = rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    (!continues).then_some(rest)
}

/// The offset of the first `quote` in `body` not escaped by a backslash, before any newline.
fn closing_quote(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in body.char_indices() {
        match c {
            '\n' => return None,
            '\\' => escaped = !escaped,
            c if c == quote && !escaped => return Some(at),
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<StructuredBox> {
        structured_boxes(text, &Segments::parse(text))
    }

    fn summary(text: &str) -> Vec<(BoxSyntax, Option<String>, [f64; 4])> {
        parse(text)
            .into_iter()
            .map(|b| (b.syntax, b.label, b.coords))
            .collect()
    }

    const A: [f64; 4] = [1.0, 2.0, 3.0, 4.0];
    const B: [f64; 4] = [5.0, 6.0, 7.0, 8.0];

    fn label(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn qwen_json_objects() {
        let text = r#"```json
[{"bbox_2d": [1, 2, 3, 4], "label": "cat"}, {"bbox_2d": [5,6,7,8]}]
```"#;
        assert_eq!(
            summary(text),
            [
                (BoxSyntax::Json, label("cat"), A),
                (BoxSyntax::Json, None, B)
            ]
        );
    }

    #[test]
    fn single_quotes_bare_keys_and_label_first() {
        let text = "{'label': ' dog ', 'bbox_2d': [1,2,3,4]} {bbox: [5,6,7,8], label: 'x'}";
        assert_eq!(
            summary(text),
            [
                (BoxSyntax::Json, label("dog"), A),
                (BoxSyntax::Json, label("x"), B)
            ]
        );
    }

    #[test]
    fn official_few_shot_object_with_repeated_keys() {
        let text = "{\n  \"bbox_2d\": [142, 314, 299, 447],\n  \"label\": \"chair\",\n  \"bbox_2d\": [0, 439, 58, 531],\n  \"label\": \"table\"\n}";
        let boxes = parse(text);
        assert_eq!(boxes.len(), 2);
        assert_eq!(boxes[0].label.as_deref(), Some("chair"));
        assert_eq!(boxes[1].label.as_deref(), Some("table"));
        assert_eq!(boxes[1].coords, [0.0, 439.0, 58.0, 531.0]);
    }

    #[test]
    fn trailing_text_and_truncation_are_tolerated() {
        let text = r#"{"bbox_2d": [1, 2, 3, 4], "label": "cat" and then the model rambles {"bbox_2d": [5, 6, 7, 8], "lab"#;
        assert_eq!(
            summary(text),
            [
                (BoxSyntax::Json, label("cat"), A),
                (BoxSyntax::Json, None, B)
            ]
        );
    }

    #[test]
    fn unterminated_label_is_no_label() {
        assert_eq!(
            summary("{\"bbox_2d\": [1,2,3,4], \"label\": \"cat\n\"}"),
            [(BoxSyntax::Json, None, A)]
        );
    }

    #[test]
    fn bare_and_nested_lists() {
        assert_eq!(summary("see [1, 2, 3, 4]."), [(BoxSyntax::List, None, A)]);
        assert_eq!(
            summary("[[1,2,3,4],[5,6,7,8]]"),
            [(BoxSyntax::List, None, A), (BoxSyntax::List, None, B)]
        );
        assert_eq!(summary("[[[1,2,3,4]]]"), [(BoxSyntax::List, None, A)]);
        let boxes = parse("[[1,2,3,4], [5,6,7,8]]");
        assert_eq!(boxes[1].span, Span::new(12, 21));
    }

    #[test]
    fn a_colon_in_prose_is_not_a_key() {
        assert_eq!(
            summary("The box is: [1, 2, 3, 4]"),
            [(BoxSyntax::List, None, A)]
        );
        assert_eq!(
            summary("Answer:\n[1, 2, 3, 4]"),
            [(BoxSyntax::List, None, A)]
        );
        assert_eq!(
            summary("{\"a\": 1, box: [1, 2, 3, 4]}"),
            [(BoxSyntax::Json, None, A)]
        );
    }

    #[test]
    fn not_boxes() {
        for text in [
            "",
            "1, 2, 3, 4",
            "[1, 2, 3]",
            "[1, 2, 3, 4, 5]",
            "[1,2,3,4,5,6,7,8]",
            "[1 2 3 4]",
            "[1, 2, 3, 4px]",
            "[1., 2, 3, 4]",
            "[1e3, 2, 3, 4]",
            "[+1, 2, 3, 4]",
            "[١, ٢, ٣, ٤]",
            "[1, 2, 3, 4",
            "[[[",
        ] {
            assert_eq!(summary(text), [], "text {text:?}");
        }
    }

    #[test]
    fn floats_and_negatives_are_parsed() {
        assert_eq!(
            summary("[0.5, 1.25, -3, 4.0]"),
            [(BoxSyntax::List, None, [0.5, 1.25, -3.0, 4.0])]
        );
    }

    #[test]
    fn a_broken_group_falls_back_to_its_boxes() {
        // The outer list never closes and holds a non-box: the complete boxes still count.
        assert_eq!(summary("[[1,2,3,4], [5,6]"), [(BoxSyntax::List, None, A)]);
        assert_eq!(
            summary("\"bbox_2d\": [[1,2,3,4], [5,6,7,8], oops"),
            [(BoxSyntax::Json, None, A), (BoxSyntax::Json, None, B)]
        );
    }

    #[test]
    fn internvl_ref_box() {
        let text =
            "<ref>chair</ref> <box>[[1, 2, 3, 4], [5, 6, 7, 8]]</box> and <box>[[1,2,3,4]]</box>";
        assert_eq!(
            summary(text),
            [
                (BoxSyntax::InternVl, label("chair"), A),
                (BoxSyntax::InternVl, label("chair"), B),
                (BoxSyntax::InternVl, None, A),
            ]
        );
        assert_eq!(
            summary("<ref> a cat </ref><box>[1,2,3,4]</box>"),
            [(BoxSyntax::InternVl, label("a cat"), A)]
        );
    }

    #[test]
    fn json_group_shares_its_label() {
        let text = r#"{"bbox_2d": [[1,2,3,4], [5,6,7,8]], "label": "cat"}"#;
        assert_eq!(
            summary(text),
            [
                (BoxSyntax::Json, label("cat"), A),
                (BoxSyntax::Json, label("cat"), B)
            ]
        );
    }

    #[test]
    fn label_key_must_match_exactly() {
        let text =
            r#"{"bbox_2d": [1,2,3,4], "labels": "cat"} {"bbox_2d": [5,6,7,8], labelled: "x"}"#;
        assert_eq!(
            summary(text),
            [(BoxSyntax::Json, None, A), (BoxSyntax::Json, None, B)]
        );
    }

    #[test]
    fn spans_cover_the_list_and_regions_follow_segments() {
        let text = "<think> é {\"bbox_2d\": [1, 2, 3, 4]} </think><answer> [5,6,7,8] </answer>";
        let boxes = parse(text);
        assert_eq!(&text[boxes[0].span.range()], "[1, 2, 3, 4]");
        assert_eq!(&text[boxes[1].span.range()], "[5,6,7,8]");
        assert_eq!(boxes[0].region, Region::Think);
        assert_eq!(boxes[1].region, Region::Answer);
    }

    #[test]
    fn huge_numbers_saturate() {
        let text = format!("[{}, 1, 2, 3]", "9".repeat(400));
        assert_eq!(
            summary(&text),
            [(BoxSyntax::List, None, [f64::MAX, 1.0, 2.0, 3.0])]
        );
    }
}
