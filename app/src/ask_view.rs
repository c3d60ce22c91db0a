//! The Ask view: a checkpoint, an image and a question; the answer streams in and its boxes
//! appear on the image as soon as their four coordinates are written.

use std::path::PathBuf;

use eframe::egui::{self, Color32, RichText, ScrollArea, Ui, Vec2};
use grit_data::completion::{BoxFrame, DegenerateThresholds, ImageSize, ParsedCompletion, Region};
use grit_data::prompt::PromptStyle;
use grit_model::backend::BackendKind;
use grit_run::RolloutBox;

use crate::ask::{Answer, Event, Question, Session};
use crate::boxes::{self, Mark, Overlay};
use crate::images::ImageCache;
use crate::rollouts::{best_gt_iou, finish_name};
use crate::text::{CompletionText, region_color, segment_ranges};

pub struct AskView {
    model: String,
    image: String,
    question: String,
    style: PromptStyle,
    backend: BackendKind,
    max_new_tokens: usize,
    temperature: f32,
    /// Ground-truth boxes when the question came from a rollout.
    gt: Vec<[f64; 4]>,
    session: Option<Session>,
    answer: Option<Answer>,
    shown: Shown,
    highlight: Option<usize>,
}

/// The answer as streamed so far, parsed when a piece arrives (not per frame).
#[derive(Default)]
struct Shown {
    text: String,
    segments: Vec<(std::ops::Range<usize>, Region)>,
    boxes: Vec<RolloutBox>,
    /// The original size and the frame the model writes boxes in.
    frame: Option<(ImageSize, BoxFrame)>,
    status: String,
    error: Option<String>,
    running: bool,
}

impl Shown {
    fn apply(&mut self, event: Event) {
        match event {
            Event::Status(status) => self.status = status,
            Event::Started {
                original,
                frame,
                prompt_tokens,
            } => {
                self.frame = Some((original, frame));
                self.status = format!("{prompt_tokens} prompt tokens; generating…");
            }
            Event::Piece(piece) => {
                self.text.push_str(&piece);
                self.reparse();
            }
            Event::Done {
                finish,
                tokens,
                seconds,
            } => {
                self.running = false;
                self.status = match finish {
                    Some(finish) => format!(
                        "{tokens} tokens in {seconds:.1} s, finished by {}",
                        finish_name(finish)
                    ),
                    None => format!("cancelled after {tokens} tokens"),
                };
            }
            Event::Failed(message) => {
                self.running = false;
                self.error = Some(message);
            }
        }
    }

    fn reparse(&mut self) {
        self.segments = segment_ranges(&self.text);
        let Some((original, frame)) = self.frame else {
            return;
        };
        let thresholds = DegenerateThresholds::default();
        self.boxes = ParsedCompletion::parse(&self.text)
            .boxes
            .iter()
            .map(|b| RolloutBox {
                region: b.region,
                label: b.label.clone(),
                pixels: frame.to_pixels(b.coords, original, &thresholds),
                span: [b.span.start, b.span.end],
            })
            .collect();
    }
}

impl Default for AskView {
    fn default() -> Self {
        Self {
            model: String::new(),
            image: String::new(),
            question: String::new(),
            style: PromptStyle::Grit,
            backend: BackendKind::Cpu,
            max_new_tokens: 256,
            temperature: 0.0,
            gt: Vec::new(),
            session: None,
            answer: None,
            shown: Shown::default(),
            highlight: None,
        }
    }
}

impl AskView {
    /// Fills the question in from a rollout (its image, question and ground truth).
    fn prefill(&mut self, image: PathBuf, question: &str, gt: &[[f64; 4]]) {
        self.image = image.display().to_string();
        self.question = question.to_owned();
        self.gt = gt.to_vec();
    }

    /// `checkpoints` are the run's, newest last; `from_rollouts` is the rollouts view's current
    /// prompt (image, question, ground truth).
    pub fn show(
        &mut self,
        ui: &mut Ui,
        checkpoints: &[(u64, PathBuf)],
        from_rollouts: Option<(PathBuf, &str, &[[f64; 4]])>,
        images: &mut ImageCache,
    ) {
        if let Some(answer) = &self.answer {
            for event in answer.events.try_iter() {
                self.shown.apply(event);
            }
        }
        if self.model.is_empty()
            && let Some((_, newest)) = checkpoints.last()
        {
            self.model = newest.display().to_string();
        }
        self.form(ui, checkpoints, from_rollouts);
        ui.separator();
        if let Some(error) = &self.shown.error {
            ui.colored_label(Color32::LIGHT_RED, error);
        }
        ui.label(RichText::new(&self.shown.status).weak());
        self.answer_ui(ui, images);
    }

    fn form(
        &mut self,
        ui: &mut Ui,
        checkpoints: &[(u64, PathBuf)],
        from_rollouts: Option<(PathBuf, &str, &[[f64; 4]])>,
    ) {
        egui::Grid::new("ask form").num_columns(2).show(ui, |ui| {
            ui.label("checkpoint");
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut self.model).desired_width(420.0));
                egui::ComboBox::from_id_salt("run checkpoints")
                    .selected_text("run checkpoints")
                    .show_ui(ui, |ui| {
                        for (step, path) in checkpoints.iter().rev() {
                            if ui.selectable_label(false, format!("step {step}")).clicked() {
                                self.model = path.display().to_string();
                            }
                        }
                    });
            });
            ui.end_row();
            ui.label("image");
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut self.image).desired_width(420.0));
                if let Some((image, question, gt)) = from_rollouts
                    && ui
                        .button("from rollouts")
                        .on_hover_text("the selected group's image, question and ground truth")
                        .clicked()
                {
                    self.prefill(image, question, gt);
                }
            });
            ui.end_row();
            ui.label("question");
            ui.add(egui::TextEdit::singleline(&mut self.question).desired_width(520.0));
            ui.end_row();
            ui.label("settings");
            ui.horizontal(|ui| {
                egui::ComboBox::from_label("prompt")
                    .selected_text(format!("{:?}", self.style).to_lowercase())
                    .show_ui(ui, |ui| {
                        for style in [PromptStyle::Grit, PromptStyle::Direct, PromptStyle::Sft] {
                            let name = format!("{style:?}").to_lowercase();
                            ui.selectable_value(&mut self.style, style, name);
                        }
                    });
                egui::ComboBox::from_label("backend")
                    .selected_text(self.backend.to_string())
                    .show_ui(ui, |ui| {
                        for backend in compiled_backends() {
                            ui.selectable_value(&mut self.backend, backend, backend.to_string());
                        }
                    });
                ui.add(egui::DragValue::new(&mut self.max_new_tokens).range(1..=4096));
                ui.label("max new tokens");
                ui.add(
                    egui::DragValue::new(&mut self.temperature)
                        .range(0.0..=2.0)
                        .speed(0.05),
                );
                ui.label("temperature (0: greedy)");
            });
            ui.end_row();
        });
        ui.horizontal(|ui| {
            let ready = !self.shown.running
                && !self.model.trim().is_empty()
                && !self.image.trim().is_empty()
                && !self.question.trim().is_empty();
            if ui.add_enabled(ready, egui::Button::new("Ask")).clicked() {
                self.ask(ui.ctx());
            }
            if ui
                .add_enabled(self.shown.running, egui::Button::new("Cancel"))
                .clicked()
                && let Some(answer) = &self.answer
            {
                answer.cancel();
            }
        });
    }

    fn ask(&mut self, ctx: &egui::Context) {
        let model = PathBuf::from(self.model.trim());
        let stale = self
            .session
            .as_ref()
            .is_none_or(|s| s.model != model || s.backend != self.backend);
        if stale {
            self.session = Some(Session::start(model.clone(), self.backend));
        }
        let question = Question {
            image: PathBuf::from(self.image.trim()),
            text: self.question.trim().to_owned(),
            style: self.style,
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
        };
        self.shown = Shown {
            running: true,
            status: "starting…".into(),
            ..Shown::default()
        };
        let session = self.session.as_ref().expect("just started");
        self.answer = session.ask(question.clone(), ctx).or_else(|| {
            // The previous session's model failed to load and its thread ended: start over.
            let fresh = Session::start(model, self.backend);
            let answer = fresh.ask(question, ctx);
            self.session = Some(fresh);
            answer
        });
    }

    fn answer_ui(&mut self, ui: &mut Ui, images: &mut ImageCache) {
        let shown = &self.shown;
        if shown.frame.is_none() && shown.text.is_empty() {
            return;
        }
        let mut hovered = None;
        ui.horizontal_top(|ui| {
            if let Some((original, _)) = shown.frame {
                let marks: Vec<Mark> = shown
                    .boxes
                    .iter()
                    .enumerate()
                    .map(|(i, b)| Mark {
                        key: (0, i),
                        xyxy: b.pixels.xyxy,
                        region: b.region,
                        color: region_color(b.region),
                        iou: best_gt_iou(b.pixels.xyxy, &self.gt),
                    })
                    .collect();
                let image = images.get(ui.ctx(), &PathBuf::from(self.image.trim()));
                let drawn = boxes::show(
                    ui,
                    Some(image),
                    original,
                    &Overlay {
                        marks: &marks,
                        gt: &self.gt,
                        highlighted: self.highlight.map(|b| (0, b)),
                    },
                    Vec2::splat(420.0),
                );
                hovered = drawn.hovered.map(|(_, b)| b);
            }
            ui.vertical(|ui| {
                ui.label(format!("{} boxes so far", shown.boxes.len()));
                let text = ScrollArea::vertical()
                    .id_salt("ask answer")
                    .stick_to_bottom(true)
                    .show(ui, |ui| {
                        CompletionText {
                            text: &shown.text,
                            segments: &shown.segments,
                            boxes: &shown.boxes,
                            color: Color32::from_rgb(0, 130, 200),
                            highlighted: self.highlight,
                        }
                        .show(ui)
                    })
                    .inner;
                hovered = hovered.or(text.hovered);
            });
        });
        if hovered != self.highlight {
            self.highlight = hovered;
            ui.ctx().request_repaint();
        }
    }
}

/// The backends this binary was built with.
fn compiled_backends() -> Vec<BackendKind> {
    let mut kinds = vec![BackendKind::Cpu];
    if cfg!(feature = "wgpu") {
        kinds.push(BackendKind::Wgpu);
    }
    if cfg!(feature = "cuda") {
        kinds.push(BackendKind::Cuda);
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_appears_once_its_four_coordinates_are_written() {
        let mut shown = Shown::default();
        shown.apply(Event::Started {
            original: ImageSize {
                width: 200,
                height: 100,
            },
            frame: BoxFrame::ProcessedPixels {
                processed: ImageSize {
                    width: 100,
                    height: 50,
                },
            },
            prompt_tokens: 10,
        });
        shown.apply(Event::Piece("<think> a square [10, 5,".into()));
        assert!(shown.boxes.is_empty());
        shown.apply(Event::Piece(" 20, 15] </think>".into()));
        assert_eq!(shown.boxes.len(), 1);
        // Written in the resized frame, drawn in the original: twice as large.
        assert_eq!(shown.boxes[0].pixels.xyxy, [20.0, 10.0, 40.0, 30.0]);
        assert_eq!(shown.boxes[0].region, Region::Think);
        assert_eq!(
            &shown.text[shown.boxes[0].span[0]..shown.boxes[0].span[1]],
            "[10, 5, 20, 15]"
        );
        assert_eq!(shown.segments.len(), 1);
    }
}
