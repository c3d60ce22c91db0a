//! The window: a run directory to open (argument, typed path or recent list), tabs for the
//! views, and the messages about broken files.

use std::path::{Path, PathBuf};

use eframe::egui::{self, Color32, Panel, RichText, Ui};

use crate::ask_view::AskView;
use crate::curves::CurvesView;
use crate::eval_view::EvalView;
use crate::images::ImageCache;
use crate::rollouts_view::RolloutsView;
use crate::run::{POLL_INTERVAL, Run};

/// Recent run directories kept.
const RECENT: usize = 10;
/// The eframe storage key of the recent list.
pub const RECENT_KEY: &str = "recent runs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Rollouts,
    Curves,
    Evaluation,
    Ask,
}

#[derive(Default)]
pub struct ViewerApp {
    run: Option<Run>,
    pub tab: Tab,
    path: String,
    open_error: Option<String>,
    /// Most recent first.
    recent: Vec<PathBuf>,
    pub rollouts: RolloutsView,
    curves: CurvesView,
    eval: EvalView,
    ask: AskView,
    images: ImageCache,
}

impl ViewerApp {
    /// `recent` as stored by [`Self::recent_text`].
    pub fn new(run: Option<&Path>, recent: &str) -> Self {
        let mut app = Self {
            recent: recent
                .lines()
                .filter(|l| !l.is_empty())
                .map(PathBuf::from)
                .collect(),
            ..Self::default()
        };
        if let Some(run) = run {
            app.open(run);
        }
        app
    }

    /// The recent list as eframe stores it: one path a line.
    pub fn recent_text(&self) -> String {
        let lines: Vec<String> = self
            .recent
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        lines.join("\n")
    }

    pub fn run(&self) -> Option<&Run> {
        self.run.as_ref()
    }

    /// The error of the last open, if it failed.
    pub fn open_error(&self) -> Option<&str> {
        self.open_error.as_deref()
    }

    pub fn open(&mut self, path: &Path) {
        self.path = path.display().to_string();
        match Run::open(path) {
            Ok(run) => {
                self.run = Some(run);
                self.open_error = None;
                self.rollouts = RolloutsView::default();
                self.curves = CurvesView::default();
                self.eval = EvalView::default();
                self.recent.retain(|p| p != path);
                self.recent.insert(0, path.to_owned());
                self.recent.truncate(RECENT);
            }
            Err(e) => self.open_error = Some(format!("{e:#}")),
        }
    }

    /// Shows a group of the rollouts view (by its index in the run's rollouts).
    pub fn open_group(&mut self, group: usize) {
        if let Some(run) = &self.run {
            self.rollouts
                .jump_to(&run.rollouts, run.rollouts.group(group).step);
            self.rollouts.select(group);
            self.tab = Tab::Rollouts;
        }
    }

    /// Reads what the trainer appended now rather than at the next poll.
    pub fn refresh(&mut self) {
        if let Some(run) = &mut self.run {
            run.refresh();
        }
    }

    /// Draws the whole window.
    pub fn show(&mut self, ui: &mut Ui) {
        if let Some(run) = &mut self.run {
            run.poll();
        }
        // Keep polling while nothing else asks for a frame.
        ui.ctx().request_repaint_after(POLL_INTERVAL);
        Panel::top("run bar").show(ui, |ui| self.run_bar(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            let Some(run) = &self.run else {
                ui.heading("Open a run directory");
                ui.label("Type its path above, pick a recent one, or pass it on the command line: grit-view RUN_DIR");
                return;
            };
            match self.tab {
                Tab::Rollouts => self.rollouts.show(ui, run, &mut self.images),
                Tab::Curves => {
                    let clicked =
                        self.curves
                            .show(ui, &run.metrics, run.generation, self.rollouts.step());
                    if let Some(step) = clicked {
                        self.rollouts.jump_to(&run.rollouts, step);
                        self.tab = Tab::Rollouts;
                    }
                }
                Tab::Evaluation => self.eval.show(ui, run, &mut self.images),
                Tab::Ask => {
                    let from_rollouts = self.rollouts.selected_group().map(|g| {
                        let group = run.rollouts.group(g);
                        let row = &run.rollouts.get(group.members[0]).row;
                        (run.resolve(&row.image), row.question.as_str(), row.gt_boxes.as_slice())
                    });
                    self.ask
                        .show(ui, &run.checkpoints, from_rollouts, &mut self.images);
                }
            }
        });
    }

    fn run_bar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.label("run");
            let field = ui.add(egui::TextEdit::singleline(&mut self.path).desired_width(360.0));
            let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Open").clicked() || entered {
                let path = PathBuf::from(self.path.trim());
                self.open(&path);
            }
            let mut chosen = None;
            egui::ComboBox::from_id_salt("recent runs")
                .selected_text("recent")
                .show_ui(ui, |ui| {
                    for p in &self.recent {
                        if ui
                            .selectable_label(false, p.display().to_string())
                            .clicked()
                        {
                            chosen = Some(p.clone());
                        }
                    }
                });
            if let Some(p) = chosen {
                self.open(&p);
            }
            ui.separator();
            for (tab, name) in [
                (Tab::Rollouts, "Rollouts"),
                (Tab::Curves, "Curves"),
                (Tab::Evaluation, "Evaluation"),
                (Tab::Ask, "Ask"),
            ] {
                ui.selectable_value(&mut self.tab, tab, name);
            }
            if let Some(run) = &self.run {
                ui.separator();
                let newest = run.metrics.last().map_or(0, |m| m.step);
                ui.label(
                    RichText::new(format!(
                        "{} steps logged (newest {newest}) · {} rollouts · {} checkpoints",
                        run.metrics.len(),
                        run.rollouts.len(),
                        run.checkpoints.len()
                    ))
                    .weak(),
                );
            }
        });
        if let Some(error) = &self.open_error {
            ui.colored_label(Color32::LIGHT_RED, error);
        }
        if let Some(run) = &self.run
            && !run.messages.is_empty()
        {
            egui::CollapsingHeader::new(
                RichText::new(format!("{} problem(s) reading the run", run.messages.len()))
                    .color(Color32::from_rgb(245, 130, 48)),
            )
            .id_salt("run problems")
            .show(ui, |ui| {
                for m in &run.messages {
                    ui.label(RichText::new(m).small());
                }
            });
        }
    }
}

impl eframe::App for ViewerApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        storage.set_string(RECENT_KEY, self.recent_text());
    }
}
