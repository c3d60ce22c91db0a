//! The completions a GRIT model should write for synthetic items, for a supervised warm start
//! before GRPO: the referents' boxes in `<think>`, a one-line check in `<rethink>`, the answer.
//! Short and regular on purpose, so that a tiny model learns the format in a few minutes.

use super::Item;
use super::questions::Question;
use super::scene::Object;

/// The grounded reasoning trace of `item`, with boxes in the model's frame: original pixels
/// times `scale` (`[x, y]`, processed size over original size), rounded to integers.
///
/// Counting, "How many red circles are there?" with two:
/// `<think> red circle [10,20,30,40] red circle [50,60,70,80] </think>\n<rethink> 2 red circles
/// </rethink>\n<answer> 2 </answer>`; with none, `<think> no red circle </think>` and
/// `<rethink> 0 red circles </rethink>`.
///
/// Spatial: `<think> red circle [..] blue square [..] </think>\n<rethink> the red circle is
/// left of the blue square </rethink>\n<answer> yes </answer>` (or "is not left of" … "no").
pub fn grounded_trace(item: &Item, scale: [f64; 2]) -> String {
    let objects = &item.objects;
    let named = |object: &Object| format!("{} {}", object.label(), box_text(object.bbox, scale));
    let (think, rethink) = match item.question {
        Question::Count(category) => {
            let counted = item.question.referents(objects);
            let count = counted.len();
            let think = if count == 0 {
                format!("no {}", category.singular())
            } else {
                let named: Vec<String> = counted.into_iter().map(named).collect();
                named.join(" ")
            };
            let noun = if count == 1 {
                category.singular()
            } else {
                category.plural()
            };
            (think, format!("{count} {noun}"))
        }
        Question::Spatial {
            subject,
            relation,
            reference,
        } => {
            let (s, r) = (&objects[subject], &objects[reference]);
            let not = if relation.holds(s, r) { "" } else { "not " };
            (
                format!("{} {}", named(s), named(r)),
                format!(
                    "the {} is {not}{} the {}",
                    s.label(),
                    relation.phrase(),
                    r.label()
                ),
            )
        }
    };
    let answer = item.question.answer(objects);
    format!("<think> {think} </think>\n<rethink> {rethink} </rethink>\n<answer> {answer} </answer>")
}

/// `[x1,y1,x2,y2]` scaled and rounded, without spaces to keep it few tokens.
fn box_text(bbox: [f64; 4], [sx, sy]: [f64; 2]) -> String {
    let [x1, y1, x2, y2] =
        [bbox[0] * sx, bbox[1] * sy, bbox[2] * sx, bbox[3] * sy].map(|v| v.round() as i64);
    format!("[{x1},{y1},{x2},{y2}]")
}
