//! Evaluation metrics (spec §7): box IoU, the three grounding scores, per-sample statistics and
//! their aggregation per dataset and overall. Pure functions over plain data, no tensor library.
//!
//! Boxes here are `[x1, y1, x2, y2]` ([`Xyxy`]) in original-image pixels. Predicted boxes come
//! from [`predicted_boxes`], which reads a completion with the structured (fixed) extractor and
//! maps every box with [`BoxFrame::to_pixels`] (scaled, corners sorted, clipped).
//!
//! Grounding scores of one sample, all `None` when the sample has no ground-truth box (it is
//! then excluded from the grounding means) and all `0` when the model wrote no box:
//!
//! - [`best_iou`]: the mean over ground-truth boxes of the best IoU with any predicted box
//!   (one prediction may serve several ground-truth boxes). This is the headline number.
//! - [`hungarian_iou`]: a one-to-one matching maximizing the summed IoU ([`max_weight_assignment`]);
//!   the mean over ground-truth boxes, an unmatched one counting 0.
//! - [`union_iou`]: the IoU of the union of predicted boxes with the union of ground-truth boxes
//!   as point sets, computed exactly by coordinate compression ([`union_area`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::completion::{
    BoxFrame, DegenerateThresholds, ImageSize, ParsedCompletion, PixelBox, Region,
};

/// A box `[x1, y1, x2, y2]` in original-image pixels.
pub type Xyxy = [f64; 4];

/// The area of a box; an inverted or empty box has area 0.
pub fn box_area(b: Xyxy) -> f64 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

/// Intersection over union of two boxes. Boxes that only touch, are disjoint or whose union has
/// no area give 0.
pub fn iou(a: Xyxy, b: Xyxy) -> f64 {
    let inter = box_area([
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ]);
    let union = box_area(a) + box_area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Mean over `gt` of the best IoU with any box of `pred`; `None` without ground truth, 0 without
/// predictions.
pub fn best_iou(gt: &[Xyxy], pred: &[Xyxy]) -> Option<f64> {
    if gt.is_empty() {
        return None;
    }
    let sum: f64 = gt
        .iter()
        .map(|&g| pred.iter().map(|&p| iou(g, p)).fold(0.0, f64::max))
        .sum();
    Some(sum / gt.len() as f64)
}

/// Mean over `gt` of the IoU in a one-to-one matching of maximum total IoU (a prediction is
/// used at most once; unmatched ground truth counts 0); `None` without ground truth.
pub fn hungarian_iou(gt: &[Xyxy], pred: &[Xyxy]) -> Option<f64> {
    if gt.is_empty() {
        return None;
    }
    let weights: Vec<Vec<f64>> = gt
        .iter()
        .map(|&g| pred.iter().map(|&p| iou(g, p)).collect())
        .collect();
    Some(max_weight_assignment(&weights).total / gt.len() as f64)
}

/// IoU of the union of `pred` with the union of `gt` as point sets; `None` without ground
/// truth, 0 without predictions.
pub fn union_iou(gt: &[Xyxy], pred: &[Xyxy]) -> Option<f64> {
    if gt.is_empty() {
        return None;
    }
    let (inter, union) = union_areas(gt, pred);
    Some(if union > 0.0 { inter / union } else { 0.0 })
}

/// The area covered by at least one of `boxes` (overlaps counted once).
pub fn union_area(boxes: &[Xyxy]) -> f64 {
    union_areas(boxes, &[]).1
}

/// (area of ∪a ∩ ∪b, area of ∪a ∪ ∪b), exactly: the box edges cut the plane into cells, each
/// either inside or outside every box, and the cells are summed. O(n³) for n boxes.
fn union_areas(a: &[Xyxy], b: &[Xyxy]) -> (f64, f64) {
    let boxes: Vec<Xyxy> = a
        .iter()
        .chain(b)
        .copied()
        .filter(|&x| box_area(x) > 0.0)
        .collect();
    let edges = |lo: usize, hi: usize| {
        let mut v: Vec<f64> = boxes.iter().flat_map(|x| [x[lo], x[hi]]).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (xs, ys) = (edges(0, 2), edges(1, 3));
    let covers = |set: &[Xyxy], cell: Xyxy| {
        set.iter()
            .any(|x| x[0] <= cell[0] && cell[2] <= x[2] && x[1] <= cell[1] && cell[3] <= x[3])
    };
    let (mut inter, mut union) = (0.0, 0.0);
    for xw in xs.windows(2) {
        for yw in ys.windows(2) {
            let cell = [xw[0], yw[0], xw[1], yw[1]];
            let (in_a, in_b) = (covers(a, cell), covers(b, cell));
            let area = box_area(cell);
            if in_a && in_b {
                inter += area;
            }
            if in_a || in_b {
                union += area;
            }
        }
    }
    (inter, union)
}

/// A one-to-one assignment between rows and columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// `(row, column)` pairs, sorted by row; `min(rows, columns)` of them.
    pub pairs: Vec<(usize, usize)>,
    /// The summed weight of the pairs.
    pub total: f64,
}

/// The maximum-weight assignment of a rectangular `rows × columns` weight matrix (Hungarian
/// algorithm with potentials, O(n²m)), matching `min(rows, columns)` pairs. With non-negative
/// weights (IoU) that is a maximum-weight matching.
///
/// # Panics
/// When the rows have different lengths or a weight is not finite.
pub fn max_weight_assignment(weights: &[Vec<f64>]) -> Assignment {
    let rows = weights.len();
    let cols = weights.first().map_or(0, Vec::len);
    assert!(
        weights.iter().all(|r| r.len() == cols),
        "ragged weight matrix"
    );
    assert!(
        weights.iter().flatten().all(|w| w.is_finite()),
        "non-finite weight"
    );
    if rows == 0 || cols == 0 {
        return Assignment {
            pairs: Vec::new(),
            total: 0.0,
        };
    }
    // The algorithm needs rows ≤ columns: transpose otherwise. Costs are negated weights.
    let transposed = rows > cols;
    let (n, m) = if transposed {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let cost = |i: usize, j: usize| {
        if transposed {
            -weights[j][i]
        } else {
            -weights[i][j]
        }
    };
    // 1-based potentials u (rows), v (columns); p[j] = row matched to column j (0 = none).
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=m {
                if !used[j] {
                    let cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = (1..=m)
        .filter(|&j| p[j] != 0)
        .map(|j| {
            if transposed {
                (j - 1, p[j] - 1)
            } else {
                (p[j] - 1, j - 1)
            }
        })
        .collect();
    pairs.sort_unstable();
    let total = pairs.iter().map(|&(r, c)| weights[r][c]).sum();
    Assignment { pairs, total }
}

/// Which part of the completion predicted boxes are read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoxSource {
    /// Bodies of `<think>` segments only (spec §7).
    #[default]
    Think,
    /// Anywhere in the completion.
    Whole,
}

/// How predicted boxes are read and scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GroundingConfig {
    pub source: BoxSource,
    /// Drop degenerate boxes ([`is_degenerate`]) before scoring (they still count in
    /// [`SampleMetrics::num_boxes`] and [`SampleMetrics::degenerate_share`]). Default: keep.
    pub drop_degenerate: bool,
    pub thresholds: DegenerateThresholds,
}

/// Zero area after clipping (includes every box entirely outside) or covering the whole image.
pub fn is_degenerate(b: &PixelBox) -> bool {
    b.flags.zero_area || b.flags.whole_image
}

/// The structured boxes of `parsed` from `source`, mapped to original pixels of an `image`.
pub fn predicted_boxes(
    parsed: &ParsedCompletion,
    frame: BoxFrame,
    image: ImageSize,
    source: BoxSource,
    thresholds: &DegenerateThresholds,
) -> Vec<PixelBox> {
    parsed
        .boxes
        .iter()
        .filter(|b| source == BoxSource::Whole || b.region == Region::Think)
        .map(|b| frame.to_pixels(b.coords, image, thresholds))
        .collect()
}

/// The three grounding scores of one sample with ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroundingScores {
    pub best_iou: f64,
    pub hungarian_iou: f64,
    pub union_iou: f64,
}

impl GroundingScores {
    /// `None` when `gt` is empty.
    pub fn compute(gt: &[Xyxy], pred: &[Xyxy]) -> Option<Self> {
        Some(Self {
            best_iou: best_iou(gt, pred)?,
            hungarian_iou: hungarian_iou(gt, pred)?,
            union_iou: union_iou(gt, pred)?,
        })
    }
}

/// How [`SampleMetrics::completion_length`] was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthUnit {
    Tokens,
    Chars,
}

/// One evaluated item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleInput<'a> {
    pub dataset: &'a str,
    pub completion: &'a str,
    /// Generated tokens, when known; otherwise the length is counted in chars.
    pub completion_tokens: Option<usize>,
    /// The raw judge score; `None` when the judge failed or was not run (excluded from the
    /// accuracy, counted in [`Aggregate::unjudged`]).
    pub judge_score: Option<f64>,
    /// Ground-truth boxes in original pixels (corners are sorted before use); empty = none.
    pub gt_boxes: &'a [Xyxy],
    pub image: ImageSize,
    pub frame: BoxFrame,
}

/// Per-sample values, as written to run files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleMetrics {
    pub dataset: String,
    pub judge_score: Option<f64>,
    /// Think, rethink and answer each present once, in order, closed.
    pub format_complete: bool,
    /// Boxes read from the configured source, degenerate ones included.
    pub num_boxes: usize,
    /// Share of those boxes that are degenerate; `None` without boxes.
    pub degenerate_share: Option<f64>,
    pub num_degenerate: usize,
    pub completion_length: usize,
    pub length_unit: LengthUnit,
    /// `None` when the sample has no ground truth.
    pub grounding: Option<GroundingScores>,
}

/// Scores one sample.
pub fn evaluate_sample(input: &SampleInput<'_>, config: &GroundingConfig) -> SampleMetrics {
    let parsed = ParsedCompletion::parse(input.completion);
    let boxes = predicted_boxes(
        &parsed,
        input.frame,
        input.image,
        config.source,
        &config.thresholds,
    );
    let num_degenerate = boxes.iter().filter(|b| is_degenerate(b)).count();
    let pred: Vec<Xyxy> = boxes
        .iter()
        .filter(|b| !(config.drop_degenerate && is_degenerate(b)))
        .map(|b| b.xyxy)
        .collect();
    let gt: Vec<Xyxy> = input
        .gt_boxes
        .iter()
        .map(|&[x1, y1, x2, y2]| [x1.min(x2), y1.min(y2), x1.max(x2), y1.max(y2)])
        .collect();
    let (completion_length, length_unit) = match input.completion_tokens {
        Some(tokens) => (tokens, LengthUnit::Tokens),
        None => (input.completion.chars().count(), LengthUnit::Chars),
    };
    SampleMetrics {
        dataset: input.dataset.to_owned(),
        judge_score: input.judge_score,
        format_complete: parsed.complete,
        num_boxes: boxes.len(),
        degenerate_share: (!boxes.is_empty()).then(|| num_degenerate as f64 / boxes.len() as f64),
        num_degenerate,
        completion_length,
        length_unit,
        grounding: GroundingScores::compute(&gt, &pred),
    }
}

/// Means over a set of samples. Every mean is `None` when nothing entered it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub samples: usize,
    /// Samples with a judge score.
    pub judged: usize,
    /// Samples without one (judge failure or not run).
    pub unjudged: usize,
    /// Mean raw judge score over judged samples.
    pub answer_accuracy: Option<f64>,
    /// Samples with ground truth.
    pub grounded: usize,
    pub best_iou: Option<f64>,
    pub hungarian_iou: Option<f64>,
    pub union_iou: Option<f64>,
    /// Share of samples with a complete think/rethink/answer format.
    pub format_compliance: Option<f64>,
    pub mean_boxes: Option<f64>,
    /// Degenerate boxes / all boxes, pooled over samples.
    pub degenerate_share: Option<f64>,
    pub mean_length: Option<f64>,
}

fn mean(sum: f64, n: usize) -> Option<f64> {
    (n > 0).then(|| sum / n as f64)
}

impl Aggregate {
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a SampleMetrics>) -> Self {
        let (mut n, mut judged, mut judge_sum, mut grounded) = (0, 0, 0.0, 0);
        let (mut best, mut hung, mut uni) = (0.0, 0.0, 0.0);
        let (mut complete, mut boxes, mut degenerate, mut length) = (0usize, 0usize, 0usize, 0.0);
        for s in samples {
            n += 1;
            if let Some(score) = s.judge_score {
                judged += 1;
                judge_sum += score;
            }
            if let Some(g) = s.grounding {
                grounded += 1;
                best += g.best_iou;
                hung += g.hungarian_iou;
                uni += g.union_iou;
            }
            complete += usize::from(s.format_complete);
            boxes += s.num_boxes;
            degenerate += s.num_degenerate;
            length += s.completion_length as f64;
        }
        Self {
            samples: n,
            judged,
            unjudged: n - judged,
            answer_accuracy: mean(judge_sum, judged),
            grounded,
            best_iou: mean(best, grounded),
            hungarian_iou: mean(hung, grounded),
            union_iou: mean(uni, grounded),
            format_compliance: mean(complete as f64, n),
            mean_boxes: mean(boxes as f64, n),
            degenerate_share: mean(degenerate as f64, boxes),
            mean_length: mean(length, n),
        }
    }
}

/// Aggregates per dataset and overall. `overall` pools all samples (a micro average), so large
/// datasets weigh more; the per-dataset entries give the macro view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSummary {
    pub overall: Aggregate,
    pub per_dataset: BTreeMap<String, Aggregate>,
}

impl MetricsSummary {
    pub fn of(samples: &[SampleMetrics]) -> Self {
        let mut groups: BTreeMap<&str, Vec<&SampleMetrics>> = BTreeMap::new();
        for s in samples {
            groups.entry(&s.dataset).or_default().push(s);
        }
        Self {
            overall: Aggregate::of(samples),
            per_dataset: groups
                .into_iter()
                .map(|(name, group)| (name.to_owned(), Aggregate::of(group)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn iou_hand_values() {
        // Overlap 1×1, union 4 + 4 − 1 = 7.
        assert!(close(iou([0., 0., 2., 2.], [1., 1., 3., 3.]), 1.0 / 7.0));
        assert_eq!(iou([1., 2., 5., 7.], [1., 2., 5., 7.]), 1.0);
        // Nested: 2×2 inside 4×4 = 4 / 16.
        assert_eq!(iou([0., 0., 4., 4.], [1., 1., 3., 3.]), 0.25);
        // Disjoint and touching along an edge.
        assert_eq!(iou([0., 0., 1., 1.], [5., 5., 6., 6.]), 0.0);
        assert_eq!(iou([0., 0., 1., 1.], [1., 0., 2., 1.]), 0.0);
        // Zero area: a segment against itself has no union.
        assert_eq!(iou([1., 1., 1., 3.], [1., 1., 1., 3.]), 0.0);
        assert_eq!(iou([1., 1., 1., 3.], [0., 0., 4., 4.]), 0.0);
        // Half-overlapping: [0,0,2,1] vs [0,0,2,2] = 2 / 4.
        assert_eq!(iou([0., 0., 2., 1.], [0., 0., 2., 2.]), 0.5);
    }

    const A: Xyxy = [0., 0., 2., 2.];
    const HALF_A: Xyxy = [0., 0., 2., 1.];
    const FAR: Xyxy = [10., 10., 12., 12.];

    #[test]
    fn no_ground_truth_is_excluded_no_prediction_is_zero() {
        assert_eq!(best_iou(&[], &[A]), None);
        assert_eq!(hungarian_iou(&[], &[A]), None);
        assert_eq!(union_iou(&[], &[A]), None);
        assert_eq!(GroundingScores::compute(&[], &[]), None);
        assert_eq!(best_iou(&[A], &[]), Some(0.0));
        assert_eq!(hungarian_iou(&[A], &[]), Some(0.0));
        assert_eq!(union_iou(&[A], &[]), Some(0.0));
    }

    #[test]
    fn best_iou_hand_values() {
        // GT A found exactly, GT FAR missed: (1 + 0) / 2.
        assert_eq!(best_iou(&[A, FAR], &[A]), Some(0.5));
        // A prediction may serve two GT boxes: A → 1, HALF_A → 0.5, mean 0.75.
        assert_eq!(best_iou(&[A, HALF_A], &[A]), Some(0.75));
        // Extra predictions do not hurt the best IoU.
        assert_eq!(best_iou(&[A], &[FAR, A, HALF_A]), Some(1.0));
    }

    #[test]
    fn hungarian_does_not_reuse_a_prediction() {
        // One prediction, two GT: A ↔ A (1), HALF_A unmatched (0): 0.5 (best IoU gives 0.75).
        assert_eq!(hungarian_iou(&[A, HALF_A], &[A]), Some(0.5));
        // With the prediction duplicated, both GT are matched: (1 + 0.5) / 2.
        assert_eq!(hungarian_iou(&[A, HALF_A], &[A, A]), Some(0.75));
        // Duplicated GT, one prediction: (1 + 0) / 2.
        assert_eq!(hungarian_iou(&[A, A], &[A]), Some(0.5));
        assert_eq!(best_iou(&[A, A], &[A]), Some(1.0));
    }

    #[test]
    fn hungarian_beats_greedy() {
        // Greedy takes 0.9 then 0.0 = 0.9; the optimum is 0.8 + 0.8.
        let a = max_weight_assignment(&[vec![0.9, 0.8], vec![0.8, 0.0]]);
        assert_eq!(a.pairs, [(0, 1), (1, 0)]);
        assert!(close(a.total, 1.6));
        // Rectangular both ways.
        let a = max_weight_assignment(&[vec![0.1, 0.5, 0.4], vec![0.2, 0.6, 0.0]]);
        assert_eq!(a.pairs, [(0, 2), (1, 1)]);
        assert!(close(a.total, 1.0));
        let a = max_weight_assignment(&[vec![0.1, 0.2], vec![0.5, 0.6], vec![0.4, 0.0]]);
        assert_eq!(a.pairs, [(1, 1), (2, 0)]);
        assert!(close(a.total, 1.0));
        assert_eq!(max_weight_assignment(&[]).pairs, []);
        assert_eq!(max_weight_assignment(&[vec![], vec![]]).total, 0.0);
    }

    #[test]
    fn union_area_hand_values() {
        assert_eq!(union_area(&[]), 0.0);
        // Overlapping: 4 + 4 − 1.
        assert_eq!(union_area(&[A, [1., 1., 3., 3.]]), 7.0);
        // Nested: the outer box alone.
        assert_eq!(union_area(&[[0., 0., 4., 4.], [1., 1., 2., 2.]]), 16.0);
        // Identical boxes count once; touching boxes add up.
        assert_eq!(union_area(&[A, A, A]), 4.0);
        assert_eq!(union_area(&[[0., 0., 1., 1.], [1., 0., 2., 1.]]), 2.0);
        // Zero-area and inverted boxes add nothing.
        assert_eq!(union_area(&[A, [5., 5., 5., 9.], [9., 9., 8., 8.]]), 4.0);
        // A cross: 3×1 + 1×3 − 1.
        assert_eq!(union_area(&[[0., 1., 3., 2.], [1., 0., 2., 3.]]), 5.0);
    }

    #[test]
    fn union_iou_hand_values() {
        // GT union 7 (two overlapping boxes) inside a 3×3 prediction: 7 / 9.
        let gt = [A, [1., 1., 3., 3.]];
        assert!(close(
            union_iou(&gt, &[[0., 0., 3., 3.]]).unwrap(),
            7.0 / 9.0
        ));
        // Overlapping duplicate predictions covering the top-left 2×2 of a 4×4 GT: 4 / 16.
        let pred = [A, A, [1., 0., 2., 2.]];
        assert_eq!(union_iou(&[[0., 0., 4., 4.]], &pred), Some(0.25));
        // Two touching GT boxes exactly covered by one prediction.
        let gt = [[0., 0., 1., 1.], [1., 0., 2., 1.]];
        assert_eq!(union_iou(&gt, &[[0., 0., 2., 1.]]), Some(1.0));
        // There best IoU is 0.5 per GT box.
        assert_eq!(best_iou(&gt, &[[0., 0., 2., 1.]]), Some(0.5));
        // Disjoint.
        assert_eq!(union_iou(&[A], &[FAR]), Some(0.0));
    }

    const IMAGE: ImageSize = ImageSize {
        width: 640,
        height: 480,
    };
    const QWEN: BoxFrame = BoxFrame::ProcessedPixels {
        processed: ImageSize {
            width: 320,
            height: 240,
        },
    };
    /// The think box maps to [0, 0, 100, 100], the rethink box to [200, 200, 300, 300].
    const TEXT: &str = "<think> the cat {\"bbox_2d\": [0, 0, 50, 50], \"label\": \"cat\"} </think>\n<rethink> [100, 100, 150, 150] </rethink>\n<answer> 1 </answer>";
    const GT: [Xyxy; 1] = [[0., 0., 100., 100.]];

    fn input<'a>(completion: &'a str, gt: &'static [Xyxy]) -> SampleInput<'a> {
        SampleInput {
            dataset: "tallyqa",
            completion,
            completion_tokens: None,
            judge_score: Some(1.0),
            gt_boxes: gt,
            image: IMAGE,
            frame: QWEN,
        }
    }

    #[test]
    fn sample_from_think_and_from_whole_output() {
        let think = evaluate_sample(&input(TEXT, &GT), &GroundingConfig::default());
        assert!(think.format_complete);
        assert_eq!(think.num_boxes, 1);
        assert_eq!(think.degenerate_share, Some(0.0));
        assert_eq!(think.completion_length, TEXT.chars().count());
        assert_eq!(think.length_unit, LengthUnit::Chars);
        assert_eq!(
            think.grounding,
            Some(GroundingScores {
                best_iou: 1.0,
                hungarian_iou: 1.0,
                union_iou: 1.0
            })
        );
        let config = GroundingConfig {
            source: BoxSource::Whole,
            ..Default::default()
        };
        let whole = evaluate_sample(&input(TEXT, &GT), &config);
        assert_eq!(whole.num_boxes, 2);
        // Union 100² + 100², intersection 100²: 0.5.
        assert_eq!(
            whole.grounding,
            Some(GroundingScores {
                best_iou: 1.0,
                hungarian_iou: 1.0,
                union_iou: 0.5
            })
        );
    }

    #[test]
    fn sample_without_boxes_or_ground_truth() {
        let text = "<think> no box </think><answer> 2";
        let mut sample = input(text, &GT);
        sample.completion_tokens = Some(7);
        let m = evaluate_sample(&sample, &GroundingConfig::default());
        assert!(!m.format_complete);
        assert_eq!(m.num_boxes, 0);
        assert_eq!(m.degenerate_share, None);
        assert_eq!(
            (m.completion_length, m.length_unit),
            (7, LengthUnit::Tokens)
        );
        assert_eq!(
            m.grounding,
            Some(GroundingScores {
                best_iou: 0.0,
                hungarian_iou: 0.0,
                union_iou: 0.0
            })
        );
        let m = evaluate_sample(&input(TEXT, &[]), &GroundingConfig::default());
        assert_eq!(m.grounding, None);
    }

    #[test]
    fn degenerate_boxes_are_counted_and_optionally_dropped() {
        // [0,0,320,240] covers the whole image; [10,10,10,20] has zero width; [0,0,50,50] is fine.
        let text = "<think> [0, 0, 320, 240] [10, 10, 10, 20] [0, 0, 50, 50] </think>";
        let gt: &'static [Xyxy] = &[[0., 0., 100., 100.]];
        let keep = evaluate_sample(&input(text, gt), &GroundingConfig::default());
        assert_eq!(keep.num_boxes, 3);
        assert_eq!(keep.num_degenerate, 2);
        assert!(close(keep.degenerate_share.unwrap(), 2.0 / 3.0));
        // Kept, the whole-image box ruins the union: 100² / (640·480).
        let g = keep.grounding.unwrap();
        assert_eq!(g.best_iou, 1.0);
        assert!(close(g.union_iou, 10_000.0 / 307_200.0));
        let config = GroundingConfig {
            drop_degenerate: true,
            ..Default::default()
        };
        let dropped = evaluate_sample(&input(text, gt), &config);
        assert_eq!(dropped.num_boxes, 3);
        assert_eq!(dropped.grounding.unwrap().union_iou, 1.0);
    }

    fn metrics(dataset: &str, judge: Option<f64>, grounding: Option<f64>) -> SampleMetrics {
        SampleMetrics {
            dataset: dataset.into(),
            judge_score: judge,
            format_complete: judge.is_some(),
            num_boxes: 2,
            degenerate_share: Some(0.5),
            num_degenerate: 1,
            completion_length: 10,
            length_unit: LengthUnit::Chars,
            grounding: grounding.map(|v| GroundingScores {
                best_iou: v,
                hungarian_iou: v / 2.0,
                union_iou: v / 4.0,
            }),
        }
    }

    #[test]
    fn summary_per_dataset_and_overall() {
        let samples = [
            metrics("vsr", Some(1.0), Some(0.8)),
            metrics("vsr", Some(0.5), None),
            metrics("tallyqa", Some(0.0), Some(0.4)),
            metrics("tallyqa", None, Some(0.0)),
        ];
        let s = MetricsSummary::of(&samples);
        let vsr = &s.per_dataset["vsr"];
        assert_eq!((vsr.samples, vsr.judged, vsr.grounded), (2, 2, 1));
        assert_eq!(vsr.answer_accuracy, Some(0.75));
        assert_eq!(vsr.best_iou, Some(0.8));
        let tally = &s.per_dataset["tallyqa"];
        assert_eq!((tally.judged, tally.unjudged), (1, 1));
        assert_eq!(tally.answer_accuracy, Some(0.0));
        assert!(close(tally.best_iou.unwrap(), 0.2));
        assert_eq!(tally.format_compliance, Some(0.5));
        let all = &s.overall;
        assert_eq!(all.samples, 4);
        // (1 + 0.5 + 0) / 3 judged.
        assert!(close(all.answer_accuracy.unwrap(), 0.5));
        // (0.8 + 0.4 + 0) / 3 grounded; Hungarian and union are half and a quarter of it.
        assert!(close(all.best_iou.unwrap(), 0.4));
        assert!(close(all.hungarian_iou.unwrap(), 0.2));
        assert!(close(all.union_iou.unwrap(), 0.1));
        assert_eq!(all.format_compliance, Some(0.75));
        assert_eq!(all.mean_boxes, Some(2.0));
        assert_eq!(all.degenerate_share, Some(0.5));
        assert_eq!(all.mean_length, Some(10.0));
        assert_eq!(MetricsSummary::of(&[]).overall.answer_accuracy, None);
        let json = serde_json::to_string(&s).unwrap();
        let back: MetricsSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    /// Best total over every injective map from the smaller side to the larger.
    fn brute_force(w: &[Vec<f64>]) -> f64 {
        fn go(w: &[Vec<f64>], row: usize, used: &mut Vec<bool>) -> f64 {
            if row == w.len() {
                return 0.0;
            }
            let mut best = f64::NEG_INFINITY;
            for c in 0..used.len() {
                if !used[c] {
                    used[c] = true;
                    best = best.max(w[row][c] + go(w, row + 1, used));
                    used[c] = false;
                }
            }
            best
        }
        let (rows, cols) = (w.len(), w.first().map_or(0, Vec::len));
        if rows == 0 || cols == 0 {
            return 0.0;
        }
        if rows <= cols {
            go(w, 0, &mut vec![false; cols])
        } else {
            let t: Vec<Vec<f64>> = (0..cols)
                .map(|c| w.iter().map(|r| r[c]).collect())
                .collect();
            go(&t, 0, &mut vec![false; rows])
        }
    }

    fn matrix() -> impl Strategy<Value = Vec<Vec<f64>>> {
        (1usize..=5, 1usize..=5).prop_flat_map(|(r, c)| {
            prop::collection::vec(prop::collection::vec(-1.0f64..1.0, c), r)
        })
    }

    fn boxes() -> impl Strategy<Value = Vec<Xyxy>> {
        prop::collection::vec(
            (0u8..10, 0u8..10, 0u8..10, 0u8..10).prop_map(|(a, b, c, d)| {
                let (a, b, c, d) = (f64::from(a), f64::from(b), f64::from(c), f64::from(d));
                [a.min(c), b.min(d), a.max(c), b.max(d)]
            }),
            0..5,
        )
    }

    /// Area of the union on the integer grid, cell by cell (boxes have integer corners < 10).
    fn raster(boxes: &[Xyxy]) -> Vec<bool> {
        let mut grid = vec![false; 100];
        for b in boxes {
            for y in b[1] as usize..b[3] as usize {
                for x in b[0] as usize..b[2] as usize {
                    grid[y * 10 + x] = true;
                }
            }
        }
        grid
    }

    proptest! {
        #[test]
        fn hungarian_matches_brute_force(w in matrix()) {
            let a = max_weight_assignment(&w);
            prop_assert!((a.total - brute_force(&w)).abs() < 1e-9);
            prop_assert_eq!(a.pairs.len(), w.len().min(w[0].len()));
            let mut rows: Vec<_> = a.pairs.iter().map(|p| p.0).collect();
            let mut cols: Vec<_> = a.pairs.iter().map(|p| p.1).collect();
            rows.dedup();
            cols.sort_unstable();
            cols.dedup();
            prop_assert_eq!(rows.len(), a.pairs.len());
            prop_assert_eq!(cols.len(), a.pairs.len());
        }

        #[test]
        fn union_iou_matches_raster(gt in boxes(), pred in boxes()) {
            let (g, p) = (raster(&gt), raster(&pred));
            let inter = g.iter().zip(&p).filter(|(a, b)| **a && **b).count() as f64;
            let union = g.iter().zip(&p).filter(|(a, b)| **a || **b).count() as f64;
            prop_assert_eq!(union_area(&gt), g.iter().filter(|v| **v).count() as f64);
            let expected = if gt.is_empty() { None } else if union > 0.0 { Some(inter / union) } else { Some(0.0) };
            prop_assert_eq!(union_iou(&gt, &pred), expected);
        }

        #[test]
        fn hungarian_never_beats_best_iou(gt in boxes(), pred in boxes()) {
            if let (Some(h), Some(b)) = (hungarian_iou(&gt, &pred), best_iou(&gt, &pred)) {
                prop_assert!(h <= b + 1e-12);
            }
        }
    }
}
