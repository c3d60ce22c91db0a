//! The curves view: one small chart per field of `metrics.jsonl`, smoothed by an exponential
//! moving average over the faint raw line, the held-out evaluations as points, cursors linked
//! across charts, values on hover, and a click on a chart picks that step for the rollouts view.

use eframe::egui::{self, Color32, ScrollArea, Slider, Ui};
use egui_plot::{HoverPosition, Line, Plot, PlotPoint, Points, VLine};
use grit_data::rewards::RewardKind;
use grit_run::StepMetrics;

const CHART_WIDTH: f32 = 330.0;
const CHART_HEIGHT: f32 = 160.0;

/// A short label for a reward's official function name.
pub fn short_reward_name(name: &str) -> &str {
    RewardKind::ALL
        .iter()
        .find(|k| k.official_name() == name)
        .map_or(name, |k| match k {
            RewardKind::AnswerAccuracy => "accuracy (judge)",
            RewardKind::Bleu => "bleu",
            RewardKind::AnswerFormat => "answer format",
            RewardKind::Repetition => "repetition",
            RewardKind::GroundedCount => "grounded thinking",
            RewardKind::ThinkFormat => "think/rethink format",
        })
}

/// One chart's data.
struct Series {
    title: String,
    /// The field's name in `metrics.jsonl`.
    field: String,
    points: Vec<PlotPoint>,
    /// `points` under the view's EMA; empty for held-out series, which are drawn as points.
    smoothed: Vec<PlotPoint>,
    /// At least the data's range; widened around a constant series, which the plot would
    /// otherwise stretch over an arbitrary ±20.
    y_range: (f64, f64),
}

pub struct CurvesView {
    /// The EMA's weight on the past: 0 shows the raw values.
    smoothing: f64,
    /// The series and the run generation and smoothing they were built at.
    cache: Option<(u64, f64, Vec<Series>)>,
}

impl Default for CurvesView {
    fn default() -> Self {
        // GRPO-GR's per-step means over 16 prompts are noisy: 0.8 averages about ten steps.
        Self {
            smoothing: 0.8,
            cache: None,
        }
    }
}

impl CurvesView {
    /// Shows the charts; returns the step clicked, if any. `current` marks the rollouts view's
    /// step on every chart.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        metrics: &[StepMetrics],
        generation: u64,
        current: Option<u64>,
    ) -> Option<u64> {
        if metrics.is_empty() {
            ui.label("No metrics yet: metrics.jsonl has no complete row.");
            return None;
        }
        ui.horizontal(|ui| {
            ui.add(Slider::new(&mut self.smoothing, 0.0..=0.99).text("smoothing (EMA)"));
            ui.label(
                egui::RichText::new(
                    "hover for values · click a chart to open that step's rollouts",
                )
                .weak(),
            );
        });
        let stale = |(g, w, _): &(u64, f64, Vec<Series>)| *g != generation || *w != self.smoothing;
        if self.cache.as_ref().is_none_or(stale) {
            self.cache = Some((generation, self.smoothing, series(metrics, self.smoothing)));
        }
        let series = &self.cache.as_ref().expect("just built").2;
        let steps: Vec<u64> = metrics.iter().map(|m| m.step).collect();
        let per_row = ((ui.available_width() / (CHART_WIDTH + 12.0)) as usize).max(1);
        let mut clicked = None;
        ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
            for row in series.chunks(per_row) {
                ui.horizontal_top(|ui| {
                    for s in row {
                        ui.vertical(|ui| {
                            ui.strong(&s.title).on_hover_text(&s.field);
                            if let Some(step) = chart(ui, s, current) {
                                clicked = Some(nearest(&steps, step));
                            }
                        });
                    }
                });
            }
        });
        clicked
    }
}

/// Draws one chart; returns the x the user clicked at.
fn chart(ui: &mut Ui, s: &Series, current: Option<u64>) -> Option<f64> {
    let title = s.title.clone();
    let points = s.points.clone();
    let smoothed = s.smoothed.clone();
    let response = Plot::new(("curve", &s.field))
        .width(CHART_WIDTH)
        .height(CHART_HEIGHT)
        .link_cursor("curves", [true, false])
        .allow_scroll(false)
        .include_y(s.y_range.0)
        .include_y(s.y_range.1)
        .allow_drag(false)
        .label_formatter(move |pos| {
            // The logged value at the step under the pointer, wherever the pointer is vertically.
            let x = match pos {
                HoverPosition::NearDataPoint { position, .. } => position.x,
                HoverPosition::Elsewhere { position } => position.x,
            };
            let i = (0..points.len())
                .min_by(|&a, &b| (points[a].x - x).abs().total_cmp(&(points[b].x - x).abs()))?;
            let p = points[i];
            let mut text = format!("step {:.0}\n{title}: {}", p.x, format_value(p.y));
            if let Some(m) = smoothed.get(i).filter(|m| m.y != p.y) {
                text.push_str(&format!("\nsmoothed: {}", format_value(m.y)));
            }
            Some(text)
        })
        .show(ui, |plot| {
            let blue = Color32::from_rgb(0, 130, 200);
            if s.smoothed.is_empty() {
                plot.line(
                    Line::new(s.field.clone(), &s.points[..])
                        .color(blue)
                        .width(1.0),
                );
                plot.points(
                    Points::new(format!("{} points", s.field), &s.points[..])
                        .color(blue)
                        .radius(3.0),
                );
            } else {
                plot.line(
                    Line::new(format!("{} raw", s.field), &s.points[..])
                        .color(blue.gamma_multiply(0.3))
                        .width(1.0),
                );
                plot.line(
                    Line::new(s.field.clone(), &s.smoothed[..])
                        .color(blue)
                        .width(2.0),
                );
            }
            if let Some(step) = current {
                plot.vline(
                    VLine::new("selected step", step as f64)
                        .color(Color32::from_rgb(245, 130, 48))
                        .width(1.0),
                );
            }
        });
    let r = &response.response;
    if r.clicked() {
        r.interact_pointer_pos()
            .map(|pos| response.transform.value_from_position(pos).x)
    } else {
        None
    }
}

/// The logged step closest to `x`.
fn nearest(steps: &[u64], x: f64) -> u64 {
    steps
        .iter()
        .copied()
        .min_by(|a, b| (*a as f64 - x).abs().total_cmp(&(*b as f64 - x).abs()))
        .unwrap_or(0)
}

fn format_value(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// An exponential moving average with TensorBoard's debiasing, so that the first steps are not
/// pulled toward zero: `weight` is the share kept of the past, below 1.
fn ema(points: &[PlotPoint], weight: f64) -> Vec<PlotPoint> {
    let (mut average, mut kept) = (0.0, 1.0);
    points
        .iter()
        .map(|p| {
            average = weight * average + (1.0 - weight) * p.y;
            kept *= weight;
            PlotPoint::new(p.x, average / (1.0 - kept))
        })
        .collect()
}

/// Every chart: each reward, then the training signals, then the held-out evaluation.
fn series(metrics: &[StepMetrics], smoothing: f64) -> Vec<Series> {
    let mut reward_names: Vec<&str> = Vec::new();
    for m in metrics {
        for name in m.rewards.keys() {
            if !reward_names.contains(&name.as_str()) {
                reward_names.push(name);
            }
        }
    }
    let official_order = |n: &&str| {
        RewardKind::ALL
            .iter()
            .position(|k| k.official_name() == *n)
            .unwrap_or(usize::MAX)
    };
    reward_names.sort_by_key(official_order);

    let make = |title: &str, field: &str, value: &dyn Fn(&StepMetrics) -> Option<f64>| {
        let points: Vec<PlotPoint> = metrics
            .iter()
            .filter_map(|m| value(m).map(|v| PlotPoint::new(m.step as f64, v)))
            .collect();
        let (lo, hi) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p.y), hi.max(p.y))
            });
        let y_range = if hi > lo {
            (lo, hi)
        } else {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo - pad, hi + pad)
        };
        // Held-out evaluations come every few steps and are averages already.
        let smoothed = if field.starts_with("eval.") {
            Vec::new()
        } else {
            ema(&points, smoothing)
        };
        Series {
            title: title.to_owned(),
            field: field.to_owned(),
            points,
            smoothed,
            y_range,
        }
    };
    let mut all = vec![make("total reward", "total_reward", &|m| {
        Some(m.total_reward)
    })];
    for name in reward_names {
        all.push(make(
            short_reward_name(name),
            &format!("rewards.{name}"),
            &|m| m.rewards.get(name).copied(),
        ));
    }
    type Field = (&'static str, &'static str, fn(&StepMetrics) -> Option<f64>);
    let fields: [Field; 13] = [
        ("accuracy", "accuracy", |m| m.accuracy),
        ("KL (k3, per token)", "kl", |m| Some(m.kl)),
        ("loss", "loss", |m| Some(m.loss)),
        ("grad norm", "grad_norm", |m| Some(m.grad_norm)),
        ("completion length", "completion_length", |m| {
            Some(m.completion_length)
        }),
        ("learning rate", "lr", |m| Some(m.lr)),
        ("truncated share", "truncated_share", |m| {
            Some(m.truncated_share)
        }),
        ("zero-variance share", "zero_variance_share", |m| {
            Some(m.zero_variance_share)
        }),
        ("clip fraction", "clip_fraction", |m| Some(m.clip_fraction)),
        ("reward errors", "reward_errors", |m| {
            Some(m.reward_errors as f64)
        }),
        ("seconds per step", "seconds", |m| Some(m.seconds)),
        ("held-out accuracy", "eval.answer_accuracy", |m| {
            m.eval.as_ref().and_then(|e| e.answer_accuracy)
        }),
        ("held-out best IoU", "eval.best_iou", |m| {
            m.eval.as_ref().and_then(|e| e.best_iou)
        }),
    ];
    for (title, field, value) in fields {
        all.push(make(title, field, &value));
    }
    all.retain(|s| !s.points.is_empty());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_cover_every_reward_and_skip_empty_fields() {
        let metrics: Vec<StepMetrics> = include_str!("../tests/fixtures/run/metrics.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let all = series(&metrics, 0.5);
        let fields: Vec<&str> = all.iter().map(|s| s.field.as_str()).collect();
        assert_eq!(fields[0], "total_reward");
        assert_eq!(fields[1], "rewards.gpt_score_reward");
        assert!(fields.contains(&"kl") && fields.contains(&"lr"));
        // The fixture has no held-out evaluation rows.
        assert!(!fields.contains(&"eval.best_iou"));
        assert!(all.iter().all(|s| s.points.len() == 3));
        assert_eq!(nearest(&[1, 2, 5], 3.8), 5);
        assert!(all.iter().all(|s| s.smoothed.len() == s.points.len()));
    }

    #[test]
    fn the_average_is_debiased_and_zero_weight_is_the_raw_line() {
        let points: Vec<PlotPoint> = [4.0, 0.0, 8.0]
            .iter()
            .enumerate()
            .map(|(i, &y)| PlotPoint::new(i as f64, y))
            .collect();
        let raw: Vec<f64> = ema(&points, 0.0).iter().map(|p| p.y).collect();
        assert_eq!(raw, [4.0, 0.0, 8.0]);
        let smooth: Vec<f64> = ema(&points, 0.5).iter().map(|p| p.y).collect();
        // Debiased: (0.5·4) / 0.5 = 4; (0.25·4 + 0.5·0) / 0.75; (0.125·4 + 0.5·8) / 0.875.
        let expected = [4.0, 1.0 / 0.75, 4.5 / 0.875];
        for (got, want) in smooth.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{smooth:?}");
        }
    }
}
