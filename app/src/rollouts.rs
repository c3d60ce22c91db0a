//! The rollouts of a run, indexed by step, prompt group and prompt source, with everything the
//! view shows computed once when a row arrives (segments, IoUs, flags), never per frame.

use std::collections::{BTreeMap, HashMap};

use grit_data::completion::{Region, Segments};
use grit_data::metrics::{iou, is_degenerate};
use grit_data::rewards::RewardKind;
use grit_model::generate::FinishReason;
use grit_run::RolloutRow;

use crate::text::segment_ranges;

/// One completion with what is derived from it.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub row: RolloutRow,
    /// Byte ranges of the segment bodies, for tinting the text.
    pub segments: Vec<(std::ops::Range<usize>, Region)>,
    /// Per box: its IoU with the ground-truth box it overlaps most; `None` without ground truth.
    pub box_iou: Vec<Option<f64>>,
    pub degenerate: bool,
    pub wrong: bool,
}

impl Rollout {
    pub fn new(row: RolloutRow) -> Self {
        let segments = segment_ranges(&row.completion);
        let box_iou = row
            .boxes
            .iter()
            .map(|b| best_gt_iou(b.pixels.xyxy, &row.gt_boxes))
            .collect();
        let degenerate = row.boxes.iter().any(|b| is_degenerate(&b.pixels));
        let wrong = is_wrong(&row);
        Self {
            row,
            segments,
            box_iou,
            degenerate,
            wrong,
        }
    }

    pub fn truncated(&self) -> bool {
        self.row.finish_reason == FinishReason::Length
    }
}

/// A finish reason as `rollouts.jsonl` spells it.
pub fn finish_name(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Eos => "eos",
        FinishReason::StopString => "stop_string",
        FinishReason::Length => "length",
    }
}

/// The IoU of `b` with the ground-truth box it overlaps most.
pub fn best_gt_iou(b: [f64; 4], gt: &[[f64; 4]]) -> Option<f64> {
    gt.iter()
        .map(|&[x1, y1, x2, y2]| iou(b, [x1.min(x2), y1.min(y2), x1.max(x2), y1.max(y2)]))
        .reduce(f64::max)
}

/// Wrong by the answer-accuracy reward (the judge's verdict the trainer used); a failed judge
/// counts as wrong. Runs without that reward compare the answer text.
fn is_wrong(row: &RolloutRow) -> bool {
    match row.rewards.get(RewardKind::AnswerAccuracy.official_name()) {
        Some(score) => score.is_none_or(|s| s < 1.0),
        None => {
            let answer = Segments::parse(&row.completion)
                .answer_text(&row.completion)
                .map(str::to_lowercase);
            answer.as_deref() != Some(row.answer.trim().to_lowercase().as_str())
        }
    }
}

/// The G completions of one prompt at one step.
#[derive(Debug, Clone)]
pub struct Group {
    pub step: u64,
    pub group: usize,
    /// Indices of the rollouts ([`Rollouts::get`]), in completion order.
    pub members: Vec<usize>,
    pub mean_reward: f64,
    /// Every completion got the same total reward: no learning signal.
    pub zero_variance: bool,
    pub truncated: bool,
    pub degenerate: bool,
    pub wrong: bool,
    pub max_abs_advantage: f64,
}

impl Group {
    fn new(step: u64, group: usize) -> Self {
        Self {
            step,
            group,
            members: Vec::new(),
            mean_reward: 0.0,
            zero_variance: true,
            truncated: false,
            degenerate: false,
            wrong: false,
            max_abs_advantage: 0.0,
        }
    }

    fn add(&mut self, index: usize, all: &[Rollout]) {
        self.members.push(index);
        let members = || self.members.iter().map(|&i| &all[i]);
        let totals: Vec<f64> = members().map(|r| r.row.total_reward).collect();
        self.mean_reward = totals.iter().sum::<f64>() / totals.len() as f64;
        let (lo, hi) = totals
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &t| {
                (lo.min(t), hi.max(t))
            });
        self.zero_variance = hi - lo <= 1e-12;
        let new = &all[index];
        self.truncated |= new.truncated();
        self.degenerate |= new.degenerate;
        self.wrong |= new.wrong;
        self.max_abs_advantage = self.max_abs_advantage.max(new.row.advantage.abs());
    }
}

/// Keep every group, only those with the property, or only those without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tri {
    #[default]
    Any,
    Only,
    Hide,
}

impl Tri {
    pub const ALL: [Tri; 3] = [Tri::Any, Tri::Only, Tri::Hide];

    fn keeps(self, has: bool) -> bool {
        match self {
            Tri::Any => true,
            Tri::Only => has,
            Tri::Hide => !has,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Tri::Any => "any",
            Tri::Only => "only",
            Tri::Hide => "hide",
        }
    }
}

/// Which groups the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Filters {
    pub zero_variance: Tri,
    pub truncated: Tri,
    pub degenerate: Tri,
    pub wrong: Tri,
}

impl Filters {
    pub fn keeps(&self, g: &Group) -> bool {
        self.zero_variance.keeps(g.zero_variance)
            && self.truncated.keeps(g.truncated)
            && self.degenerate.keeps(g.degenerate)
            && self.wrong.keeps(g.wrong)
    }
}

/// The order of the groups in the list and of the completions within a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// Step, group and completion index, as written.
    #[default]
    Index,
    /// Highest (mean) total reward first.
    Reward,
    /// Highest advantage first; groups by their largest |advantage|.
    Advantage,
}

impl SortBy {
    pub const ALL: [SortBy; 3] = [SortBy::Index, SortBy::Reward, SortBy::Advantage];

    pub fn label(self) -> &'static str {
        match self {
            SortBy::Index => "index",
            SortBy::Reward => "reward",
            SortBy::Advantage => "advantage",
        }
    }
}

/// Every rollout of a run, in file order, with its groups.
#[derive(Debug, Default)]
pub struct Rollouts {
    all: Vec<Rollout>,
    groups: Vec<Group>,
    by_key: HashMap<(u64, usize), usize>,
    /// Group indices of each step.
    steps: BTreeMap<u64, Vec<usize>>,
    /// Group indices of each prompt (`source`), in step order.
    by_source: HashMap<String, Vec<usize>>,
}

impl Rollouts {
    pub fn push(&mut self, row: RolloutRow) {
        let key = (row.step, row.group);
        let source = row.source.clone();
        let index = self.all.len();
        self.all.push(Rollout::new(row));
        let group = *self.by_key.entry(key).or_insert_with(|| {
            let g = self.groups.len();
            self.groups.push(Group::new(key.0, key.1));
            self.steps.entry(key.0).or_default().push(g);
            let same = self.by_source.entry(source).or_default();
            same.push(g);
            // Steps normally arrive in order; a resumed run may rewrite them.
            same.sort_by_key(|&i| (self.groups[i].step, self.groups[i].group));
            g
        });
        self.groups[group].add(index, &self.all);
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn get(&self, index: usize) -> &Rollout {
        &self.all[index]
    }

    pub fn group(&self, index: usize) -> &Group {
        &self.groups[index]
    }

    pub fn steps(&self) -> impl DoubleEndedIterator<Item = u64> + '_ {
        self.steps.keys().copied()
    }

    /// The group of `step` with the given index.
    pub fn find(&self, step: u64, group: usize) -> Option<usize> {
        self.by_key.get(&(step, group)).copied()
    }

    /// The groups of `step`.
    pub fn groups_of(&self, step: u64) -> &[usize] {
        self.steps.get(&step).map_or(&[], Vec::as_slice)
    }

    /// Every group of the same prompt (same `source`), in step order.
    pub fn same_prompt(&self, group: usize) -> &[usize] {
        let first = self.groups[group].members[0];
        self.by_source
            .get(&self.all[first].row.source)
            .map_or(&[], Vec::as_slice)
    }

    /// The groups of `step` (or of every step) that pass `filters`, in `sort` order.
    pub fn select(&self, step: Option<u64>, filters: &Filters, sort: SortBy) -> Vec<usize> {
        let mut groups: Vec<usize> = match step {
            Some(step) => self.groups_of(step).to_vec(),
            None => self.steps.values().flatten().copied().collect(),
        };
        groups.retain(|&g| filters.keeps(&self.groups[g]));
        let key = |g: usize| {
            let g = &self.groups[g];
            match sort {
                SortBy::Index => 0.0,
                SortBy::Reward => -g.mean_reward,
                SortBy::Advantage => -g.max_abs_advantage,
            }
        };
        // Stable: ties keep step and group order.
        groups.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
        groups
    }

    /// The completions of a group in `sort` order.
    pub fn members_sorted(&self, group: usize, sort: SortBy) -> Vec<usize> {
        let mut members = self.groups[group].members.clone();
        let key = |i: usize| {
            let r = &self.all[i].row;
            match sort {
                SortBy::Index => r.index as f64,
                SortBy::Reward => -r.total_reward,
                SortBy::Advantage => -r.advantage,
            }
        };
        members.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP_SIZE: usize = 4;

    /// The committed fixture run: steps 1–3, two prompts, four completions each.
    fn fixture_rows() -> Vec<RolloutRow> {
        include_str!("../tests/fixtures/run/rollouts.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn groups_flags_and_prompt_history_are_indexed_once() {
        let mut rollouts = Rollouts::default();
        for row in fixture_rows() {
            rollouts.push(row);
        }
        assert_eq!(rollouts.steps().collect::<Vec<_>>(), vec![1, 2, 3]);
        let g = rollouts.find(2, 0).unwrap();
        let group = rollouts.group(g);
        assert_eq!(group.members.len(), GROUP_SIZE);
        assert!(!group.zero_variance);
        // The fixture's group 1 gives every completion the same reward.
        assert!(rollouts.group(rollouts.find(2, 1).unwrap()).zero_variance);
        assert_eq!(rollouts.same_prompt(g).len(), 3);

        let only_zero = Filters {
            zero_variance: Tri::Only,
            ..Filters::default()
        };
        let selected = rollouts.select(Some(2), &only_zero, SortBy::Index);
        assert_eq!(selected, vec![rollouts.find(2, 1).unwrap()]);
        let best_first = rollouts.members_sorted(g, SortBy::Reward);
        let rewards: Vec<f64> = best_first
            .iter()
            .map(|&i| rollouts.get(i).row.total_reward)
            .collect();
        assert!(rewards.windows(2).all(|w| w[0] >= w[1]), "{rewards:?}");
    }

    #[test]
    fn box_iou_is_against_the_best_ground_truth_box() {
        let gt = [[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]];
        assert_eq!(best_gt_iou([20.0, 20.0, 30.0, 30.0], &gt), Some(1.0));
        assert_eq!(best_gt_iou([0.0, 0.0, 10.0, 5.0], &gt), Some(0.5));
        assert_eq!(best_gt_iou([0.0, 0.0, 1.0, 1.0], &[]), None);
    }
}
