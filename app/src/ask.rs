//! Asking a checkpoint a question off the UI thread, as `grit-infer` does: image → pixels,
//! question → chat prompt, generation streamed piece by piece.
//!
//! A [`Session`] is a thread that loads one checkpoint on one backend when the first question
//! arrives and keeps it for the next ones. Cancelling needs nothing from `generate`: it ends a
//! row when the row's text contains a stop string, so while the cancel flag is set the
//! detokenizer it calls after every token answers with a stop string of our own that no model
//! writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Instant;

use anyhow::Context as _;
use burn::tensor::backend::Backend;
use eframe::egui;
use grit_data::completion::{BoxFrame, ImageSize};
use grit_data::preprocess::{GRIT_MAX_PIXELS, GRIT_MIN_PIXELS};
use grit_data::prompt::PromptStyle;
use grit_model::Vlm;
use grit_model::backend::{BackendKind, OnBackend, dispatch};
use grit_model::generate::{FinishReason, Sampling, generate};
use grit_model::processor::{Processor, ProcessorOptions};
/// The stop string a cancelled generation sees.
const CANCELLED: &str = "\u{0}grit-view: cancelled\u{0}";

/// One question.
#[derive(Debug, Clone)]
pub struct Question {
    pub image: PathBuf,
    pub text: String,
    pub style: PromptStyle,
    pub max_new_tokens: usize,
    /// 0 decodes greedily.
    pub temperature: f32,
}

/// What the session reports while answering.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Status(String),
    /// The prompt is ready: boxes are written in `frame` and drawn in `original`.
    Started {
        original: ImageSize,
        frame: BoxFrame,
        prompt_tokens: usize,
    },
    /// More text (whole characters).
    Piece(String),
    /// `finish` is `None` when cancelled.
    Done {
        finish: Option<FinishReason>,
        tokens: usize,
        seconds: f64,
    },
    Failed(String),
}

/// An answer on its way.
pub struct Answer {
    pub events: Receiver<Event>,
    cancel: Arc<AtomicBool>,
}

impl Answer {
    /// Asks generation to stop after its current token.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

struct Job {
    question: Question,
    events: Sender<Event>,
    cancel: Arc<AtomicBool>,
    repaint: egui::Context,
}

impl Job {
    fn send(&self, event: Event) {
        // The view may have moved on and dropped the receiver; nothing to do then.
        let _ = self.events.send(event);
        self.repaint.request_repaint();
    }
}

/// A checkpoint loaded on a backend, answering one question at a time.
pub struct Session {
    pub model: PathBuf,
    pub backend: BackendKind,
    jobs: Sender<Job>,
}

impl Session {
    pub fn start(model: PathBuf, backend: BackendKind) -> Self {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let dir = model.clone();
        std::thread::Builder::new()
            .name("grit-view ask".into())
            .spawn(move || serve(dir, backend, inbox))
            .expect("spawning a thread");
        Self {
            model,
            backend,
            jobs,
        }
    }

    /// Queues a question; `None` when the session's thread has ended (its model failed to
    /// load), so a new session is needed.
    pub fn ask(&self, question: Question, repaint: &egui::Context) -> Option<Answer> {
        let (events, receiver) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            question,
            events,
            cancel: cancel.clone(),
            repaint: repaint.clone(),
        };
        self.jobs.send(job).ok()?;
        Some(Answer {
            events: receiver,
            cancel,
        })
    }
}

fn serve(dir: PathBuf, backend: BackendKind, inbox: Receiver<Job>) {
    let Ok(first) = inbox.recv() else { return };
    let events = first.events.clone();
    let repaint = first.repaint.clone();
    let task = Serve { dir, first, inbox };
    if let Err(e) = dispatch(backend, task) {
        let _ = events.send(Event::Failed(e.to_string()));
        repaint.request_repaint();
    }
}

struct Serve {
    dir: PathBuf,
    first: Job,
    inbox: Receiver<Job>,
}

impl OnBackend for Serve {
    type Output = ();

    fn run<B: Backend>(self, device: B::Device) {
        let Serve { dir, first, inbox } = self;
        first.send(Event::Status(format!("loading {}", dir.display())));
        let loaded = Loaded::<B>::load(&dir, &device);
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                first.send(Event::Failed(format!("{e:#}")));
                return;
            }
        };
        for job in std::iter::once(first).chain(inbox.iter()) {
            if let Err(e) = loaded.answer(&job) {
                job.send(Event::Failed(format!("{e:#}")));
            }
        }
    }
}

struct Loaded<B: Backend> {
    model: Vlm<B>,
    processor: Processor,
}

impl<B: Backend> Loaded<B> {
    fn load(dir: &Path, device: &B::Device) -> anyhow::Result<Self> {
        // GRIT's pixel budget, as grit-infer uses by default.
        let options = ProcessorOptions {
            min_pixels: Some(GRIT_MIN_PIXELS),
            max_pixels: Some(GRIT_MAX_PIXELS),
            ..ProcessorOptions::default()
        };
        let processor = Processor::from_dir(dir, &options)?;
        let model =
            Vlm::<B>::load(dir, device).with_context(|| format!("loading {}", dir.display()))?;
        Ok(Self { model, processor })
    }

    fn answer(&self, job: &Job) -> anyhow::Result<()> {
        let q = &job.question;
        let image = self.processor.load_image(&q.image)?;
        let encoded = self
            .processor
            .encode(&image, &q.text, q.style)
            .with_context(|| format!("preprocessing {}", q.image.display()))?;
        job.send(Event::Started {
            original: encoded.original,
            frame: encoded.frame,
            prompt_tokens: encoded.prompt.ids().len(),
        });
        let sampling = Sampling {
            temperature: q.temperature,
            top_k: 50,
            top_p: 1.0,
            seed: 0,
        };
        let mut config = self
            .processor
            .generation(q.max_new_tokens, sampling, q.style);
        config.stop_strings.push(CANCELLED.to_owned());
        let cancelled = || job.cancel.load(Ordering::Relaxed);
        let detokenize = |ids: &[u32]| {
            if cancelled() {
                Ok(CANCELLED.to_owned())
            } else {
                self.processor.detokenize(ids)
            }
        };
        let start = Instant::now();
        let mut stream = self.processor.tokenizer.stream_decoder(true);
        let mut on_token = |_row: usize, token: u32| {
            let piece = stream.push(token);
            if !piece.is_empty() {
                job.send(Event::Piece(piece));
            }
        };
        let mut completions = generate(
            &self.model,
            &[encoded.prompt],
            &config,
            Some(&detokenize),
            Some(&mut on_token),
        )?;
        let rest = stream.finish();
        if !rest.is_empty() {
            job.send(Event::Piece(rest));
        }
        let completion = completions.remove(0);
        job.send(Event::Done {
            finish: (!cancelled()).then_some(completion.finish),
            tokens: completion.tokens.len(),
            seconds: start.elapsed().as_secs_f64(),
        });
        Ok(())
    }
}
