//! A completion as text: think / rethink / answer bodies tinted, the coordinates of every box
//! highlighted, and hovering a coordinate reported as that box.

use std::ops::Range;

use eframe::egui::text::{CCursor, LayoutJob};
use eframe::egui::{self, Color32, Rect, Sense, Stroke, TextFormat, TextStyle, Ui};
use grit_data::completion::{Region, Segments};
use grit_run::RolloutBox;

/// The byte ranges of the segment bodies, parsed once per completion.
pub fn segment_ranges(text: &str) -> Vec<(Range<usize>, Region)> {
    Segments::parse(text)
        .segments
        .iter()
        .map(|s| (s.body.range(), Region::from(s.kind)))
        .collect()
}

/// The segment colours of `grit-infer --out`: think blue, rethink orange, answer green.
pub fn region_color(region: Region) -> Color32 {
    match region {
        Region::Think => Color32::from_rgb(66, 133, 244),
        Region::Rethink => Color32::from_rgb(251, 140, 0),
        Region::Answer => Color32::from_rgb(52, 168, 83),
        Region::Outside => Color32::from_rgb(158, 158, 158),
    }
}

/// A completion to show.
pub struct CompletionText<'a> {
    pub text: &'a str,
    pub segments: &'a [(Range<usize>, Region)],
    pub boxes: &'a [RolloutBox],
    /// The colour of this completion's boxes on the image.
    pub color: Color32,
    /// The box whose coordinates are emphasized.
    pub highlighted: Option<usize>,
}

/// What showing a completion found out.
pub struct Shown {
    /// The box whose coordinates the pointer is over.
    pub hovered: Option<usize>,
    /// Screen rectangles of each box's coordinates (several when they wrap over rows).
    pub box_rects: Vec<Vec<Rect>>,
}

impl CompletionText<'_> {
    pub fn show(self, ui: &mut Ui) -> Shown {
        let job = self.layout_job(ui);
        let galley = ui.painter().layout_job(job);
        let (rect, response) = ui.allocate_exact_size(galley.size(), Sense::hover());
        let box_rects: Vec<Vec<Rect>> = self
            .boxes
            .iter()
            .map(|b| span_rects(&galley, self.text, b.span, rect))
            .collect();
        let hovered = response.hover_pos().and_then(|pointer| {
            box_rects
                .iter()
                .position(|rects| rects.iter().any(|r| r.contains(pointer)))
        });
        ui.painter()
            .galley(rect.min, galley, ui.visuals().text_color());
        Shown { hovered, box_rects }
    }

    fn layout_job(&self, ui: &Ui) -> LayoutJob {
        let font_id = TextStyle::Monospace.resolve(ui.style());
        let text_color = ui.visuals().text_color();
        let weak = ui.visuals().weak_text_color();
        let mut cuts: Vec<usize> = vec![0, self.text.len()];
        for (range, _) in self.segments {
            cuts.extend([range.start, range.end]);
        }
        for b in self.boxes {
            cuts.extend(b.span);
        }
        cuts.retain(|&c| c <= self.text.len() && self.text.is_char_boundary(c));
        cuts.sort_unstable();
        cuts.dedup();

        let mut job = LayoutJob {
            wrap: egui::text::TextWrapping {
                max_width: ui.available_width(),
                ..Default::default()
            },
            ..Default::default()
        };
        for piece in cuts.windows(2) {
            let (start, end) = (piece[0], piece[1]);
            let region = self
                .segments
                .iter()
                .find(|(r, _)| r.start <= start && start < r.end)
                .map(|(_, region)| *region);
            let in_box = self
                .boxes
                .iter()
                .position(|b| b.span[0] <= start && start < b.span[1]);
            let mut format = TextFormat {
                font_id: font_id.clone(),
                color: if region.is_some() { text_color } else { weak },
                background: region.map_or(Color32::TRANSPARENT, |r| {
                    region_color(r).gamma_multiply(0.18)
                }),
                ..Default::default()
            };
            if let Some(i) = in_box {
                if self.highlighted == Some(i) {
                    format.background = self.color;
                    format.color = Color32::BLACK;
                    format.underline = Stroke::new(2.0, Color32::BLACK);
                } else {
                    format.background = self.color.gamma_multiply(0.45);
                    format.color = ui.visuals().strong_text_color();
                }
            }
            job.append(&self.text[start..end], 0.0, format);
        }
        job
    }
}

/// The screen rectangles a byte span covers in a galley laid out at `at`.
fn span_rects(galley: &egui::Galley, text: &str, span: [usize; 2], at: Rect) -> Vec<Rect> {
    let char_at = |byte: usize| text.get(..byte).map_or(0, |t| t.chars().count());
    let start = galley.pos_from_cursor(CCursor::new(char_at(span[0])));
    let end = galley.pos_from_cursor(CCursor::new(char_at(span[1])));
    let offset = at.min.to_vec2();
    let rects = if (start.min.y - end.min.y).abs() < 0.5 {
        vec![Rect::from_min_max(start.min, end.max)]
    } else {
        // Wrapped: the end of the first row, any full rows between, the start of the last.
        let (left, right) = (0.0, galley.size().x);
        let mut rects = vec![Rect::from_min_max(
            start.min,
            egui::pos2(right, start.max.y),
        )];
        if end.min.y > start.max.y + 0.5 {
            rects.push(Rect::from_min_max(
                egui::pos2(left, start.max.y),
                egui::pos2(right, end.min.y),
            ));
        }
        rects.push(Rect::from_min_max(egui::pos2(left, end.min.y), end.max));
        rects
    };
    rects.into_iter().map(|r| r.translate(offset)).collect()
}
