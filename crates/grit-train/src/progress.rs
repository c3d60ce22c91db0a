//! What the user sees while a run goes: a progress bar with step, reward, KL and ETA on a
//! terminal, one plain line per step otherwise (logs, CI).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use grit_run::StepMetrics;

pub struct Progress {
    bar: Option<ProgressBar>,
    /// No terminal: print lines instead of drawing.
    plain: bool,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Self {
            bar: None,
            plain: ProgressDrawTarget::stderr().is_hidden(),
            quiet,
        }
    }

    /// A phase of `total` units starting at `done` (SFT steps, GRPO steps).
    pub fn start(&mut self, phase: &str, done: u64, total: u64) {
        self.finish();
        if self.quiet || self.plain {
            return;
        }
        let bar = ProgressBar::new(total).with_position(done);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{phase:>5} {{bar:30}} {{pos}}/{{len}} {{msg}} [{{elapsed_precise}} < {{eta}}]"
            ))
            .expect("valid template"),
        );
        bar.reset_eta();
        self.bar = Some(bar);
    }

    pub fn start_steps(&mut self, done: u64, total: u64) {
        self.start("grpo", done, total);
    }

    pub fn step(&mut self, step: u64, m: &StepMetrics) {
        let accuracy = m.accuracy.map_or(String::new(), |a| format!(" acc {a:.2}"));
        let message = format!(
            "reward {:.3}{accuracy} kl {:.4} loss {:.4} len {:.0}",
            m.total_reward, m.kl, m.loss, m.completion_length
        );
        self.update(
            step,
            &format!("step {step}: {message} ({:.1}s)", m.seconds),
            message,
        );
    }

    pub fn sft_step(&mut self, step: u64, loss: f64) {
        let message = format!("loss {loss:.4}");
        if step.is_multiple_of(25) || self.bar.is_some() {
            self.update(step, &format!("sft step {step}: {message}"), message);
        }
    }

    pub fn eval(&mut self, name: &str, done: usize, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("eval {name} {done}/{total}"));
        } else if !self.quiet && done == total {
            eprintln!("eval {name}: {done}/{total} items");
        }
    }

    pub fn note(&mut self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn update(&mut self, position: u64, line: &str, message: String) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(message);
            }
            None if !self.quiet => eprintln!("{line}"),
            None => {}
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}
