//! The `grit-infer` pipeline: image → pixels, question → chat prompt → ids, generation with
//! streaming, completion → answer and boxes in the original image's pixels.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::tensor::backend::Backend;
use clap::Parser;
use grit_data::annotate::{Mark, draw_marks};
use grit_data::completion::{
    BoxFrame, DegenerateThresholds, ImageSize, ParsedCompletion, PixelBox, Region,
};
use grit_data::preprocess::{GRIT_MAX_PIXELS, GRIT_MIN_PIXELS};
use grit_data::prompt::PromptStyle;
use grit_data::rewards::Mode;
use grit_model::backend::{BackendKind, OnBackend, dispatch};
use grit_model::generate::{FinishReason, Sampling, generate};
use grit_model::processor::{Processor, ProcessorOptions};
use grit_model::{Prompt, Vlm};
use serde::Serialize;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "grit-infer",
    about = "Ask a grounded question about an image and watch the reasoning"
)]
pub struct Args {
    /// HF checkpoint directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// The image to ask about (PNG, JPEG or WebP).
    #[arg(long)]
    pub image: PathBuf,
    /// The question, as a user would ask it.
    #[arg(long)]
    pub question: String,
    /// Where tensors live: cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub backend: BackendKind,
    /// The instruction after the question: grit (think, rethink, answer), direct (the bare
    /// question, zero-shot baseline) or sft (list the boxes, then answer).
    #[arg(long, default_value_t = PromptStyle::Grit)]
    pub prompt: PromptStyle,
    /// The longest completion, in tokens.
    #[arg(long, default_value_t = 1000)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 decodes greedily.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample among the k most likely tokens (0: all).
    #[arg(long, default_value_t = 50)]
    pub top_k: usize,
    /// Sample among the most likely tokens whose probability reaches p (1: all).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Qwen2.5-VL: fewest pixels of the resized image (default: GRIT's 3136).
    #[arg(long)]
    pub min_pixels: Option<usize>,
    /// Qwen2.5-VL: most pixels of the resized image (default: GRIT's 200704, at most 256 visual
    /// tokens).
    #[arg(long)]
    pub max_pixels: Option<usize>,
    /// InternVL3: the most 448-px tiles per image (default: GRIT's 2).
    #[arg(long)]
    pub max_tiles: Option<usize>,
    /// Write the original image with the boxes drawn, numbered and coloured by segment.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    pub model: PathBuf,
    pub image: PathBuf,
    pub question: String,
    pub prompt: String,
    /// `Qwen2.5-VL` or `InternVL3`.
    pub family: String,
    pub original_size: ImageSize,
    /// What the model saw: Qwen2.5-VL's resized image, InternVL3's tile grid.
    pub processed_size: ImageSize,
    pub prompt_tokens: usize,
    /// The prompt as token ids, images expanded.
    pub prompt_ids: Vec<u32>,
    pub completion: String,
    pub completion_tokens: usize,
    pub completion_ids: Vec<u32>,
    pub finish_reason: FinishReason,
    pub answer: Option<String>,
    pub format_complete: bool,
    /// Boxes the official regex counts (what the GRIT rewards see).
    pub compat_box_count: usize,
    pub boxes: Vec<ReportBox>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct ReportBox {
    /// 1-based, as drawn on `--out`.
    pub number: usize,
    pub region: Region,
    pub label: Option<String>,
    /// In original pixels, clipped, corners sorted; `pixels.raw` holds what the model wrote.
    pub pixels: PixelBox,
}

/// Answers the question, then prints the report (as JSON with `--json`).
pub fn run(args: &Args) -> anyhow::Result<()> {
    let report = infer(args)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(&report, args.out.as_deref());
    }
    Ok(())
}

/// Answers the question (streaming the reasoning to stdout unless `--json`), writes `--out`,
/// and returns what `--json` prints.
pub fn infer(args: &Args) -> anyhow::Result<Report> {
    let processor = Processor::from_dir(
        &args.model,
        &ProcessorOptions {
            min_pixels: Some(args.min_pixels.unwrap_or(GRIT_MIN_PIXELS)),
            max_pixels: Some(args.max_pixels.unwrap_or(GRIT_MAX_PIXELS)),
            max_tiles: args.max_tiles,
            mode: Mode::Fixed,
        },
    )?;
    let image = processor.load_image(&args.image)?;
    let encoded = processor
        .encode(&image, &args.question, args.prompt)
        .with_context(|| format!("preprocessing {}", args.image.display()))?;

    let start = Instant::now();
    let completion = dispatch(
        args.backend,
        Generate {
            args,
            processor: &processor,
            prompt: &encoded.prompt,
        },
    )??;
    let seconds = start.elapsed().as_secs_f64();

    let text = processor.detokenize(&completion.tokens)?;
    let parsed = ParsedCompletion::parse(&text);
    let boxes = boxes_in_original(&parsed, encoded.frame, encoded.original);

    if let Some(out) = &args.out {
        write_annotated(image, &boxes, out)?;
    }
    let report = Report {
        model: args.model.clone(),
        image: args.image.clone(),
        question: args.question.clone(),
        prompt: args.prompt.to_string(),
        family: processor.family().name().to_owned(),
        original_size: encoded.original,
        processed_size: encoded.processed,
        prompt_tokens: encoded.prompt.ids().len(),
        prompt_ids: encoded.prompt.ids().to_vec(),
        completion: text,
        completion_tokens: completion.tokens.len(),
        completion_ids: completion.tokens,
        finish_reason: completion.finish,
        answer: parsed.answer.clone(),
        format_complete: parsed.complete,
        compat_box_count: parsed.compat_boxes.len(),
        boxes,
        seconds,
    };
    Ok(report)
}

/// Every box the model wrote, numbered in order, mapped from the model's frame to the original
/// image's pixels.
pub fn boxes_in_original(
    parsed: &ParsedCompletion,
    frame: BoxFrame,
    original: ImageSize,
) -> Vec<ReportBox> {
    let thresholds = DegenerateThresholds::default();
    parsed
        .boxes
        .iter()
        .enumerate()
        .map(|(i, b)| ReportBox {
            number: i + 1,
            region: b.region,
            label: b.label.clone(),
            pixels: frame.to_pixels(b.coords, original, &thresholds),
        })
        .collect()
}

struct Generate<'a> {
    args: &'a Args,
    processor: &'a Processor,
    prompt: &'a Prompt,
}

impl OnBackend for Generate<'_> {
    type Output = anyhow::Result<grit_model::generate::Completion>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let Generate {
            args,
            processor,
            prompt,
        } = self;
        let model = Vlm::<B>::load(&args.model, &device)?;
        let sampling = Sampling {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        };
        let config = processor.generation(args.max_new_tokens, sampling, args.prompt);
        let detokenize = |ids: &[u32]| processor.detokenize(ids);
        let mut stream = processor.tokenizer.stream_decoder(true);
        let mut stdout = std::io::stdout();
        let mut on_token = |_row: usize, token: u32| {
            let piece = stream.push(token);
            // A closed stdout (piped into `head`) must not abort generation.
            let _ = stdout
                .write_all(piece.as_bytes())
                .and_then(|_| stdout.flush());
        };
        let on_token: Option<&mut dyn FnMut(usize, u32)> =
            (!args.json).then_some(&mut on_token as &mut dyn FnMut(usize, u32));
        let mut completions = generate(
            &model,
            std::slice::from_ref(prompt),
            &config,
            Some(&detokenize),
            on_token,
        )?;
        Ok(completions.remove(0))
    }
}

fn region_color(region: Region) -> [u8; 3] {
    match region {
        Region::Think => [66, 133, 244],
        Region::Rethink => [251, 140, 0],
        Region::Answer => [52, 168, 83],
        Region::Outside => [158, 158, 158],
    }
}

/// Writes beside the target and renames, so a crash never leaves half a PNG.
pub fn write_annotated(
    image: image::RgbImage,
    boxes: &[ReportBox],
    out: &Path,
) -> anyhow::Result<()> {
    let mut image = image;
    let marks: Vec<Mark> = boxes
        .iter()
        .map(|b| {
            let [x1, y1, x2, y2] = b.pixels.xyxy;
            Mark {
                x1: x1 as f32,
                y1: y1 as f32,
                x2: x2 as f32,
                y2: y2 as f32,
                color: region_color(b.region),
                number: b.number,
            }
        })
        .collect();
    draw_marks(&mut image, &marks);
    let tmp = out.with_extension("partial.png");
    image
        .save_with_format(&tmp, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))
}

fn print_summary(report: &Report, out: Option<&Path>) {
    println!();
    println!();
    match &report.answer {
        Some(answer) => println!("answer: {answer}"),
        None => println!("answer: (none: the completion has no <answer>)"),
    }
    println!(
        "boxes in original pixels ({}×{}; the model saw {}×{}):",
        report.original_size.width,
        report.original_size.height,
        report.processed_size.width,
        report.processed_size.height
    );
    if report.boxes.is_empty() {
        println!("  (none)");
    }
    for b in &report.boxes {
        let [x1, y1, x2, y2] = b.pixels.xyxy;
        let label = b
            .label
            .as_deref()
            .map(|l| format!(" \"{l}\""))
            .unwrap_or_default();
        let flags = &b.pixels.flags;
        let mut notes = Vec::new();
        if flags.zero_area {
            notes.push("zero area");
        }
        if flags.whole_image {
            notes.push("whole image");
        }
        if flags.inverted_x || flags.inverted_y {
            notes.push("corners swapped");
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join(", "))
        };
        println!(
            "  #{:<2} {:<8} [{x1:.0}, {y1:.0}, {x2:.0}, {y2:.0}]{label}{notes}",
            b.number,
            format!("{:?}", b.region).to_lowercase()
        );
    }
    println!(
        "{} prompt + {} completion tokens, finished by {:?}, {:.2} s",
        report.prompt_tokens, report.completion_tokens, report.finish_reason, report.seconds
    );
    if let Some(out) = out {
        println!("annotated image: {}", out.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHOTO: ImageSize = ImageSize {
        width: 1920,
        height: 1080,
    };
    const SEEN: ImageSize = ImageSize {
        width: 588,
        height: 336,
    };

    #[test]
    fn boxes_map_to_the_photo_and_are_drawn_by_segment() {
        let text = "<think> the red square {\"bbox_2d\": [92, 62, 214, 187], \"label\": \"square\"} \
                    and the disc [367, 156, 490, 280] </think>\n<rethink> one square [92, 62, 214, 187] \
                    </rethink>\n<answer> 1 </answer>";
        let parsed = ParsedCompletion::parse(text);
        let seen = BoxFrame::ProcessedPixels { processed: SEEN };
        let boxes = boxes_in_original(&parsed, seen, PHOTO);
        let regions: Vec<Region> = boxes.iter().map(|b| b.region).collect();
        assert_eq!(regions, [Region::Think, Region::Think, Region::Rethink]);
        assert_eq!(boxes[0].label.as_deref(), Some("square"));
        // x · 1920/588, y · 1080/336
        let [x1, y1, x2, y2] = boxes[0].pixels.xyxy;
        let expected = [
            92.0 * 1920.0 / 588.0,
            62.0 * 1080.0 / 336.0,
            214.0 * 1920.0 / 588.0,
            187.0 * 1080.0 / 336.0,
        ];
        for (got, want) in [x1, y1, x2, y2].into_iter().zip(expected) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }

        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("annotated.png");
        let photo = image::RgbImage::from_pixel(PHOTO.width, PHOTO.height, image::Rgb([0, 0, 0]));
        write_annotated(photo, &boxes, &out).unwrap();
        let drawn = image::open(&out).unwrap().to_rgb8();
        // The right edge of box 1 (think, blue) and of box 3's twin (rethink, orange, drawn last).
        let right_edge = x2.round() as u32;
        let middle = ((y1 + y2) / 2.0) as u32;
        assert_eq!(
            drawn.get_pixel(right_edge, middle).0,
            region_color(Region::Rethink)
        );
        let [_, d_y1, d_x2, d_y2] = boxes[1].pixels.xyxy;
        let disc_edge = drawn.get_pixel(d_x2.round() as u32, ((d_y1 + d_y2) / 2.0) as u32);
        assert_eq!(disc_edge.0, region_color(Region::Think));
        assert!(!dir.path().join("annotated.partial.png").exists());

        // InternVL3 writes 0–1000: x · 1920/1000, y · 1080/1000.
        let boxes = boxes_in_original(&parsed, BoxFrame::Normalized1000, PHOTO);
        let expected = [704.64, 168.48, 940.8, 302.4];
        for (got, want) in boxes[1].pixels.xyxy.into_iter().zip(expected) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
    }
}
