//! The rollouts view: a step scrubber, the list of prompt groups (filtered, sorted), and for the
//! selected group the image with every completion's boxes beside the G completions.

use eframe::egui::{self, Color32, Panel, Rect, RichText, ScrollArea, Ui, Vec2};
use grit_run::RolloutRow;

use crate::boxes::{self, BoxKey, Mark, Overlay};
use crate::images::ImageCache;
use crate::rollouts::{Filters, Rollouts, SortBy, Tri, finish_name};
use crate::run::Run;
use crate::text::CompletionText;

/// Width of one completion column.
const COLUMN_WIDTH: f32 = 330.0;

#[derive(Default)]
pub struct RolloutsView {
    step: Option<u64>,
    /// Index of the selected group in [`Rollouts`].
    selected: Option<usize>,
    filters: Filters,
    sort: SortBy,
    /// List the groups of every step, not only the scrubber's.
    all_steps: bool,
    /// Keep the selected prompt when the step changes.
    follow_prompt: bool,
    /// Stop following the newest step once the user picks another.
    pinned: bool,
    /// The box shown highlighted: what the pointer was over in the last frame.
    highlight: Option<BoxKey>,
    /// Where the last frame drew each box and its coordinates, for tests and tooling.
    box_rects: Vec<(BoxKey, Rect)>,
    coordinate_rects: Vec<(BoxKey, Rect)>,
    list: Option<(ListKey, Vec<usize>)>,
}

/// What the group list depends on.
#[derive(Clone, Copy, PartialEq)]
struct ListKey {
    generation: u64,
    step: Option<u64>,
    filters: Filters,
    sort: SortBy,
}

impl RolloutsView {
    /// The box highlighted now: `(rollout index, box index)` into [`Rollouts`].
    pub fn highlighted_box(&self) -> Option<BoxKey> {
        self.highlight
    }

    /// Where the box was drawn on the image in the last frame.
    pub fn box_rect(&self, key: BoxKey) -> Option<Rect> {
        find(&self.box_rects, key)
    }

    /// Where the box's coordinates were drawn in its completion in the last frame.
    pub fn coordinate_rect(&self, key: BoxKey) -> Option<Rect> {
        find(&self.coordinate_rects, key)
    }

    pub fn step(&self) -> Option<u64> {
        self.step
    }

    pub fn selected_group(&self) -> Option<usize> {
        self.selected
    }

    /// Shows `step` (from a click on a curve); the newest step is no longer followed.
    pub fn jump_to(&mut self, rollouts: &Rollouts, step: u64) {
        self.pinned = true;
        self.set_step(rollouts, step);
    }

    pub fn select(&mut self, group: usize) {
        self.selected = Some(group);
        self.highlight = None;
    }

    pub fn show(&mut self, ui: &mut Ui, run: &Run, images: &mut ImageCache) {
        let rollouts = &run.rollouts;
        if rollouts.is_empty() {
            ui.label("No rollouts yet: rollouts.jsonl has no complete row.");
            return;
        }
        if let Some(newest) = rollouts.steps().next_back()
            && (!self.pinned || self.step.is_none())
            && self.step != Some(newest)
        {
            self.set_step(rollouts, newest);
        }
        self.toolbar(ui, rollouts);
        let key = ListKey {
            generation: run.generation,
            step: if self.all_steps { None } else { self.step },
            filters: self.filters,
            sort: self.sort,
        };
        if self.list.as_ref().is_none_or(|(k, _)| *k != key) {
            let groups = rollouts.select(key.step, &self.filters, self.sort);
            self.list = Some((key, groups));
        }
        Panel::left("groups")
            .resizable(true)
            .default_size(250.0)
            .show(ui, |ui| self.group_list(ui, rollouts));
        egui::CentralPanel::default().show(ui, |ui| match self.selected {
            Some(group) => self.group(ui, run, images, group),
            None => {
                ui.label("No group matches the filters at this step.");
            }
        });
    }

    fn set_step(&mut self, rollouts: &Rollouts, step: u64) {
        if self.step == Some(step) {
            return;
        }
        self.step = Some(step);
        self.highlight = None;
        let same_prompt = self.selected.filter(|_| self.follow_prompt).and_then(|g| {
            rollouts
                .same_prompt(g)
                .iter()
                .copied()
                .find(|&other| rollouts.group(other).step == step)
        });
        let kept = self
            .selected
            .filter(|&g| self.all_steps && rollouts.group(g).step == step);
        self.selected = same_prompt.or(kept).or_else(|| {
            rollouts
                .select(Some(step), &self.filters, self.sort)
                .first()
                .copied()
        });
    }

    fn toolbar(&mut self, ui: &mut Ui, rollouts: &Rollouts) {
        let steps: Vec<u64> = rollouts.steps().collect();
        let (first, last) = (steps[0], *steps.last().expect("not empty"));
        ui.horizontal_wrapped(|ui| {
            let mut step = self.step.unwrap_or(last);
            let position = steps.iter().position(|&s| s == step).unwrap_or(0);
            if ui.button("◀").on_hover_text("previous step").clicked() && position > 0 {
                step = steps[position - 1];
            }
            ui.add(egui::Slider::new(&mut step, first..=last).text("step"));
            if ui.button("▶").on_hover_text("next step").clicked() && position + 1 < steps.len() {
                step = steps[position + 1];
            }
            let mut newest = !self.pinned;
            ui.checkbox(&mut newest, "newest")
                .on_hover_text("follow the newest step as training writes it");
            self.pinned = !newest;
            if Some(step) != self.step {
                // The slider may land between logged steps: take the nearest one logged.
                let nearest = steps
                    .iter()
                    .copied()
                    .min_by_key(|s| s.abs_diff(step))
                    .unwrap_or(step);
                self.pinned = nearest != last;
                self.set_step(rollouts, nearest);
            }
            ui.separator();
            ui.checkbox(&mut self.all_steps, "all steps")
                .on_hover_text("list the groups of every step");
            ui.checkbox(&mut self.follow_prompt, "follow prompt")
                .on_hover_text("keep the same prompt (same source line) when the step changes");
            ui.separator();
            egui::ComboBox::from_label("sort")
                .selected_text(self.sort.label())
                .show_ui(ui, |ui| {
                    for sort in SortBy::ALL {
                        ui.selectable_value(&mut self.sort, sort, sort.label());
                    }
                });
            ui.separator();
            let filters = &mut self.filters;
            tri(ui, "zero variance", "ZV", &mut filters.zero_variance);
            tri(ui, "truncated", "T", &mut filters.truncated);
            tri(ui, "degenerate boxes", "D", &mut filters.degenerate);
            tri(ui, "wrong answers", "W", &mut filters.wrong);
        });
        ui.separator();
    }

    fn group_list(&mut self, ui: &mut Ui, rollouts: &Rollouts) {
        let groups = self.list.as_ref().map_or(&[][..], |(_, g)| g.as_slice());
        ui.label(format!("{} groups", groups.len()));
        // One line per row: `show_rows` relies on equal row heights.
        ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
        let row_height = ui.text_style_height(&egui::TextStyle::Body) + ui.spacing().item_spacing.y;
        let mut clicked = None;
        // Only the visible rows are laid out, however many groups the run has.
        ScrollArea::vertical().auto_shrink(false).show_rows(
            ui,
            row_height,
            groups.len(),
            |ui, range| {
                for &g in &groups[range] {
                    let group = rollouts.group(g);
                    let mut tags = String::new();
                    for (has, tag) in [
                        (group.zero_variance, " ZV"),
                        (group.truncated, " T"),
                        (group.degenerate, " D"),
                        (group.wrong, " W"),
                    ] {
                        if has {
                            tags.push_str(tag);
                        }
                    }
                    let text = format!(
                        "step {} · prompt {} · {:.2}{tags}",
                        group.step, group.group, group.mean_reward
                    );
                    if ui
                        .selectable_label(self.selected == Some(g), text)
                        .clicked()
                    {
                        clicked = Some(g);
                    }
                }
            },
        );
        if let Some(g) = clicked {
            self.select(g);
            let step = rollouts.group(g).step;
            if self.step != Some(step) {
                self.pinned = true;
                self.step = Some(step);
            }
        }
    }

    fn group(&mut self, ui: &mut Ui, run: &Run, images: &mut ImageCache, group: usize) {
        let rollouts = &run.rollouts;
        let members = rollouts.members_sorted(group, self.sort);
        let first = &rollouts.get(members[0]).row;
        self.header(ui, rollouts, group, first);

        let shown = self.highlight;
        let mut hovered = None;
        self.box_rects.clear();
        self.coordinate_rects.clear();
        ui.horizontal_top(|ui| {
            let marks: Vec<Mark> = members
                .iter()
                .enumerate()
                .flat_map(|(column, &i)| {
                    let r = rollouts.get(i);
                    r.row.boxes.iter().enumerate().map(move |(b, bx)| Mark {
                        key: (i, b),
                        xyxy: bx.pixels.xyxy,
                        region: bx.region,
                        color: boxes::completion_color(column),
                        iou: r.box_iou[b],
                    })
                })
                .collect();
            let image = images.get(ui.ctx(), &run.resolve(&first.image));
            let drawn = boxes::show(
                ui,
                Some(image),
                first.original_size,
                &Overlay {
                    marks: &marks,
                    gt: &first.gt_boxes,
                    highlighted: shown,
                },
                Vec2::splat(360.0),
            );
            hovered = drawn.hovered;
            self.box_rects = drawn.rects;
            ui.vertical(|ui| {
                boxes::legend(ui);
                ui.label(
                    RichText::new("hover a box or a coordinate to find its twin")
                        .weak()
                        .small(),
                );
            });
        });
        ui.separator();

        ScrollArea::horizontal().auto_shrink(false).show(ui, |ui| {
            ui.horizontal_top(|ui| {
                for (column, &i) in members.iter().enumerate() {
                    ui.vertical(|ui| {
                        ui.set_width(COLUMN_WIDTH);
                        let found = self.completion(ui, rollouts, i, column, shown);
                        hovered = hovered.or(found);
                    });
                    ui.separator();
                }
            });
        });
        if hovered != self.highlight {
            self.highlight = hovered;
            ui.ctx().request_repaint();
        }
    }

    fn header(&mut self, ui: &mut Ui, rollouts: &Rollouts, group: usize, row: &RolloutRow) {
        let g = rollouts.group(group);
        ui.horizontal_wrapped(|ui| {
            ui.strong(format!("step {} · prompt {}", g.step, g.group));
            // The sample's file name and line; the full path on hover.
            let short = row.source.rsplit(['/', '\\']).next().unwrap_or(&row.source);
            ui.label(format!("{} · {short}", row.dataset))
                .on_hover_text(&row.source);
            ui.label(format!("mean reward {:.3}", g.mean_reward));
        });
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(&row.question).strong());
            ui.label(format!("expected: {}", row.answer));
        });
        let history = rollouts.same_prompt(group);
        if history.len() > 1 {
            ui.horizontal_wrapped(|ui| {
                ui.label(RichText::new("this prompt at step:").weak());
                for &other in history {
                    let o = rollouts.group(other);
                    let label = format!("{} ({:.2})", o.step, o.mean_reward);
                    if ui.selectable_label(other == group, label).clicked() && other != group {
                        self.pinned = true;
                        self.step = Some(o.step);
                        self.select(other);
                    }
                }
            });
        }
    }

    /// One completion column; returns the box whose coordinates are hovered.
    fn completion(
        &mut self,
        ui: &mut Ui,
        rollouts: &Rollouts,
        index: usize,
        column: usize,
        shown: Option<BoxKey>,
    ) -> Option<BoxKey> {
        let r = rollouts.get(index);
        let row = &r.row;
        let color = boxes::completion_color(column);
        ui.horizontal(|ui| {
            let (swatch, _) = ui.allocate_exact_size(Vec2::splat(12.0), egui::Sense::hover());
            ui.painter().rect_filled(swatch, 2.0, color);
            ui.strong(format!("#{}", row.index));
            ui.label(format!("total {:.2}", row.total_reward));
            let advantage = RichText::new(format!("adv {:+.2}", row.advantage));
            ui.label(if row.advantage > 0.0 {
                advantage.color(Color32::from_rgb(80, 200, 120))
            } else if row.advantage < 0.0 {
                advantage.color(Color32::from_rgb(230, 90, 90))
            } else {
                advantage
            });
        });
        ui.label(
            RichText::new(format!(
                "{} · {} tokens{}{}",
                finish_name(row.finish_reason),
                row.tokens,
                if r.degenerate {
                    " · degenerate box"
                } else {
                    ""
                },
                if r.wrong { " · wrong" } else { " · right" },
            ))
            .small(),
        );
        egui::CollapsingHeader::new("rewards")
            .id_salt(("rewards", index))
            .default_open(true)
            .show(ui, |ui| {
                egui::Grid::new(("reward grid", index))
                    .num_columns(2)
                    .spacing([8.0, 0.0])
                    .show(ui, |ui| {
                        for (name, value) in &row.rewards {
                            ui.label(RichText::new(crate::curves::short_reward_name(name)).small())
                                .on_hover_text(name);
                            match value {
                                Some(v) => ui.label(RichText::new(format!("{v:.3}")).small()),
                                None => ui
                                    .label(
                                        RichText::new("failed").small().color(Color32::LIGHT_RED),
                                    )
                                    .on_hover_text(
                                        row.reward_errors.get(name).map_or("", String::as_str),
                                    ),
                            };
                            ui.end_row();
                        }
                    });
            });
        let shown_here = shown.filter(|(i, _)| *i == index).map(|(_, b)| b);
        let text = ScrollArea::vertical()
            .id_salt(("completion", column))
            .max_height(ui.available_height())
            .show(ui, |ui| {
                CompletionText {
                    text: &row.completion,
                    segments: &r.segments,
                    boxes: &row.boxes,
                    color,
                    highlighted: shown_here,
                }
                .show(ui)
            })
            .inner;
        for (b, rects) in text.box_rects.iter().enumerate() {
            if let Some(&first) = rects.first() {
                self.coordinate_rects.push(((index, b), first));
            }
        }
        text.hovered.map(|b| (index, b))
    }
}

fn find(rects: &[(BoxKey, Rect)], key: BoxKey) -> Option<Rect> {
    rects.iter().find(|(k, _)| *k == key).map(|(_, r)| *r)
}

/// A filter as a small combo box: any, only, hide.
fn tri(ui: &mut Ui, name: &str, tag: &str, value: &mut Tri) {
    egui::ComboBox::from_id_salt(name)
        .width(60.0)
        .selected_text(value.label())
        .show_ui(ui, |ui| {
            for t in Tri::ALL {
                ui.selectable_value(value, t, t.label());
            }
        });
    ui.label(format!("{name} ({tag})"));
}
