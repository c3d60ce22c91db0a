//! The evaluation view: the per-dataset table of `summary.json`, the evaluated items, and one
//! item's image with its boxes against the ground truth; a second evaluation side by side.

use eframe::egui::{self, Color32, Panel, RichText, ScrollArea, Ui, Vec2};
use grit_data::metrics::Aggregate;

use crate::boxes::{self, BoxKey, Mark, Overlay};
use crate::eval::{EvalSample, Evaluation};
use crate::images::{ImageCache, Slot};
use crate::run::Run;
use crate::text::CompletionText;

#[derive(Default)]
pub struct EvalView {
    /// The evaluation shown, by name.
    main: Option<String>,
    /// The one compared with it.
    other: Option<String>,
    /// The selected item's id.
    selected: Option<String>,
    only_wrong: bool,
    /// Show report-grid.png instead of one item.
    show_grid: bool,
    highlight: Option<BoxKey>,
}

impl EvalView {
    pub fn show(&mut self, ui: &mut Ui, run: &Run, images: &mut ImageCache) {
        let evaluations = &run.evaluations.list;
        if evaluations.is_empty() {
            ui.label("No evaluation yet: eval/<name>/ appears before and after training.");
            return;
        }
        if self
            .main
            .as_ref()
            .is_none_or(|m| run.evaluations.get(m).is_none())
        {
            self.main = Some(evaluations[0].name.clone());
        }
        ui.horizontal(|ui| {
            pick(ui, "evaluation", evaluations, &mut self.main, false);
            pick(ui, "compare with", evaluations, &mut self.other, true);
            ui.checkbox(&mut self.only_wrong, "only wrong answers");
            if run.report_grid.is_some() {
                ui.checkbox(&mut self.show_grid, "before/after grid")
                    .on_hover_text("report-grid.png: the report's held-out items");
            }
        });
        let main = self.main.as_deref().and_then(|n| run.evaluations.get(n));
        let other = self.other.as_deref().and_then(|n| run.evaluations.get(n));
        let Some(main) = main else { return };
        summary_table(ui, main, other);
        ui.separator();

        Panel::left("eval samples")
            .resizable(true)
            .default_size(260.0)
            .show(ui, |ui| self.sample_list(ui, main));
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(grid) = run.report_grid.as_deref().filter(|_| self.show_grid) {
                report_grid(ui, images, grid);
                return;
            }
            let Some(id) = self.selected.clone() else {
                ui.label("Pick an item on the left.");
                return;
            };
            let shown = self.highlight;
            let mut hovered = None;
            ui.horizontal_top(|ui| {
                for (side, evaluation) in [Some(main), other].into_iter().flatten().enumerate() {
                    ui.vertical(|ui| {
                        ui.set_width(380.0);
                        ui.strong(&evaluation.name);
                        match evaluation.sample(&id) {
                            Some(sample) => {
                                let found = sample_detail(ui, run, images, sample, side, shown);
                                hovered = hovered.or(found);
                            }
                            None => {
                                ui.label("not in this evaluation");
                            }
                        }
                    });
                    ui.separator();
                }
            });
            if hovered != self.highlight {
                self.highlight = hovered;
                ui.ctx().request_repaint();
            }
        });
    }

    fn sample_list(&mut self, ui: &mut Ui, main: &Evaluation) {
        let samples: Vec<&EvalSample> = main
            .samples
            .iter()
            .filter(|s| !self.only_wrong || !s.correct())
            .collect();
        ui.label(format!("{} items", samples.len()));
        // One line per row: `show_rows` relies on equal row heights.
        ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
        let row_height = ui.text_style_height(&egui::TextStyle::Body) + ui.spacing().item_spacing.y;
        ScrollArea::vertical().auto_shrink(false).show_rows(
            ui,
            row_height,
            samples.len(),
            |ui, range| {
                for s in &samples[range] {
                    let iou = s
                        .row
                        .metrics
                        .grounding
                        .map_or("–".to_owned(), |g| format!("{:.2}", g.best_iou));
                    let text = format!(
                        "{} · {} · {} · IoU {iou}",
                        if s.correct() { "right" } else { "wrong" },
                        short_id(&s.row.id),
                        s.row.dataset
                    );
                    let selected = self.selected.as_deref() == Some(s.row.id.as_str());
                    if ui.selectable_label(selected, text).clicked() {
                        self.selected = Some(s.row.id.clone());
                        self.highlight = None;
                    }
                }
            },
        );
    }
}

/// The report's grid at its own size or smaller, scrolled when taller than the panel.
fn report_grid(ui: &mut Ui, images: &mut ImageCache, path: &std::path::Path) {
    ui.label(
        RichText::new(
            "before GRPO-GR | after · ground truth white, model boxes magenta · bar: answer right \
             (green) or wrong (red)",
        )
        .weak(),
    );
    ScrollArea::vertical()
        .auto_shrink(false)
        .show(ui, |ui| match images.get(ui.ctx(), path) {
            Slot::Ready { texture, size } => {
                let scale = (ui.available_width() / size[0] as f32).min(1.0);
                let size = Vec2::new(size[0] as f32, size[1] as f32) * scale;
                ui.image((texture.id(), size));
            }
            Slot::Failed(message) => {
                ui.colored_label(Color32::LIGHT_RED, message);
            }
        });
}

/// `file:line` without the directories.
fn short_id(id: &str) -> &str {
    id.rsplit(['/', '\\']).next().unwrap_or(id)
}

fn pick(ui: &mut Ui, label: &str, list: &[Evaluation], value: &mut Option<String>, optional: bool) {
    ui.label(label);
    egui::ComboBox::from_id_salt(label)
        .selected_text(value.as_deref().unwrap_or("none"))
        .show_ui(ui, |ui| {
            if optional {
                ui.selectable_value(value, None, "none");
            }
            for e in list {
                ui.selectable_value(value, Some(e.name.clone()), &e.name);
            }
        });
}

/// One row per dataset (and overall); with a second evaluation, each cell shows both
/// (`this | other`) and the difference, green where the other is higher.
fn summary_table(ui: &mut Ui, main: &Evaluation, other: Option<&Evaluation>) {
    let Some(summary) = &main.summary else {
        ui.label("summary.json not written yet");
        return;
    };
    let other = other.and_then(|o| o.summary.as_ref());
    type Column = (&'static str, fn(&Aggregate) -> Option<f64>);
    let columns: [Column; 8] = [
        ("samples", |a| Some(a.samples as f64)),
        ("accuracy", |a| a.answer_accuracy),
        ("best IoU", |a| a.best_iou),
        ("hungarian IoU", |a| a.hungarian_iou),
        ("union IoU", |a| a.union_iou),
        ("format", |a| a.format_compliance),
        ("boxes", |a| a.mean_boxes),
        ("length", |a| a.mean_length),
    ];
    let mut rows: Vec<(&str, &Aggregate)> = vec![("overall", &summary.overall)];
    rows.extend(summary.per_dataset.iter().map(|(k, v)| (k.as_str(), v)));
    egui::Grid::new("summary")
        .striped(true)
        .spacing([14.0, 2.0])
        .show(ui, |ui| {
            ui.strong("dataset");
            for (name, _) in &columns {
                ui.strong(*name);
            }
            ui.end_row();
            for (dataset, aggregate) in rows {
                ui.label(dataset);
                let theirs = other.and_then(|o| {
                    if dataset == "overall" {
                        Some(&o.overall)
                    } else {
                        o.per_dataset.get(dataset)
                    }
                });
                for (_, value) in &columns {
                    let a = value(aggregate);
                    match theirs.map(value) {
                        None => {
                            ui.label(fmt(a));
                        }
                        Some(b) => {
                            let delta = a.zip(b).map(|(a, b)| b - a);
                            let color = match delta {
                                Some(d) if d > 1e-9 => Color32::from_rgb(80, 200, 120),
                                Some(d) if d < -1e-9 => Color32::from_rgb(230, 90, 90),
                                _ => ui.visuals().text_color(),
                            };
                            let text = match delta {
                                Some(d) => format!("{} | {} ({d:+.3})", fmt(a), fmt(b)),
                                None => format!("{} | {}", fmt(a), fmt(b)),
                            };
                            ui.label(RichText::new(text).color(color));
                        }
                    }
                }
                ui.end_row();
            }
        });
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(v) if v.fract() == 0.0 && v.abs() >= 1.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
        None => "–".to_owned(),
    }
}

/// One evaluated item: image with boxes vs ground truth, judge result, completion. Returns the
/// box hovered (`(side, box)`).
fn sample_detail(
    ui: &mut Ui,
    run: &Run,
    images: &mut ImageCache,
    sample: &EvalSample,
    side: usize,
    shown: Option<BoxKey>,
) -> Option<BoxKey> {
    let row = &sample.row;
    ui.label(RichText::new(&row.question).strong());
    ui.label(format!("expected: {}", row.answer));
    let judge = match (row.judge_score, &row.judge_error) {
        (Some(score), _) => format!("judge score {score}"),
        (None, Some(error)) => format!("judge failed: {error}"),
        (None, None) => "not judged".to_owned(),
    };
    ui.label(RichText::new(judge).color(if sample.correct() {
        Color32::from_rgb(80, 200, 120)
    } else {
        Color32::from_rgb(230, 90, 90)
    }));
    if let Some(g) = row.metrics.grounding {
        ui.label(format!(
            "IoU best {:.3} · hungarian {:.3} · union {:.3}",
            g.best_iou, g.hungarian_iou, g.union_iou
        ));
    }
    let color = boxes::completion_color(side);
    let marks: Vec<Mark> = row
        .boxes
        .iter()
        .enumerate()
        .map(|(b, bx)| Mark {
            key: (side, b),
            xyxy: bx.pixels.xyxy,
            region: bx.region,
            color,
            iou: sample.box_iou[b],
        })
        .collect();
    let image = images.get(ui.ctx(), &run.resolve(&row.image));
    let drawn = boxes::show(
        ui,
        Some(image),
        row.original_size,
        &Overlay {
            marks: &marks,
            gt: &row.gt_boxes,
            highlighted: shown,
        },
        Vec2::splat(360.0),
    );
    let text = ScrollArea::vertical()
        .id_salt(("eval completion", side))
        .show(ui, |ui| {
            CompletionText {
                text: &row.completion,
                segments: &sample.segments,
                boxes: &row.boxes,
                color,
                highlighted: shown.filter(|(s, _)| *s == side).map(|(_, b)| b),
            }
            .show(ui)
        })
        .inner;
    drawn.hovered.or(text.hovered.map(|b| (side, b)))
}
