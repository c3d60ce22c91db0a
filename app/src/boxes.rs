//! An image with boxes drawn over it: predicted boxes in their completion's colour, the segment
//! they were written in shown by line style, ground truth in white, each predicted box labelled
//! with its IoU; hovering a box reports it.

use eframe::egui::{
    self, Align2, Color32, FontId, Pos2, Rect, Sense, Shape, Stroke, StrokeKind, Ui, Vec2,
};
use grit_data::completion::{ImageSize, Region};

use crate::images::Slot;

/// Identifies a box: (the completion it belongs to, its index in that completion).
pub type BoxKey = (usize, usize);

/// A predicted box to draw, in original-image pixels.
pub struct Mark {
    pub key: BoxKey,
    pub xyxy: [f64; 4],
    pub region: Region,
    pub color: Color32,
    /// IoU with the best ground-truth box.
    pub iou: Option<f64>,
}

pub struct Overlay<'a> {
    pub marks: &'a [Mark],
    pub gt: &'a [[f64; 4]],
    pub highlighted: Option<BoxKey>,
}

/// What drawing found out.
pub struct Drawn {
    /// The box under the pointer (the smallest, where boxes nest).
    pub hovered: Option<BoxKey>,
    /// Where each mark was drawn on screen.
    pub rects: Vec<(BoxKey, Rect)>,
}

/// A distinct colour for the `i`-th completion of a group.
pub fn completion_color(i: usize) -> Color32 {
    const PALETTE: [Color32; 8] = [
        Color32::from_rgb(230, 25, 75),
        Color32::from_rgb(60, 180, 75),
        Color32::from_rgb(0, 130, 200),
        Color32::from_rgb(245, 130, 48),
        Color32::from_rgb(145, 30, 180),
        Color32::from_rgb(70, 240, 240),
        Color32::from_rgb(240, 50, 230),
        Color32::from_rgb(210, 245, 60),
    ];
    PALETTE[i % PALETTE.len()]
}

/// Draws `image` (of `size` original pixels) scaled to fit `max` and the overlay on it.
pub fn show(
    ui: &mut Ui,
    image: Option<&Slot>,
    size: ImageSize,
    overlay: &Overlay<'_>,
    max: Vec2,
) -> Drawn {
    let natural = Vec2::new(size.width.max(1) as f32, size.height.max(1) as f32);
    let scale = (max.x / natural.x).min(max.y / natural.y);
    let (rect, response) = ui.allocate_exact_size(natural * scale, Sense::hover());
    let painter = ui.painter_at(rect);
    match image {
        Some(Slot::Ready { texture, .. }) => {
            let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
            painter.image(texture.id(), rect, uv, Color32::WHITE);
        }
        Some(Slot::Failed(message)) => {
            painter.rect_filled(rect, 0.0, Color32::from_gray(40));
            painter.text(
                rect.center(),
                Align2::CENTER_CENTER,
                message,
                FontId::proportional(11.0),
                Color32::LIGHT_RED,
            );
        }
        None => {
            painter.rect_filled(rect, 0.0, Color32::from_gray(40));
        }
    }
    let to_screen = |b: [f64; 4]| {
        Rect::from_min_max(
            rect.min + Vec2::new(b[0] as f32, b[1] as f32) * scale,
            rect.min + Vec2::new(b[2] as f32, b[3] as f32) * scale,
        )
    };
    for &gt in overlay.gt {
        let r = to_screen(gt);
        painter.rect_stroke(r, 0.0, Stroke::new(4.0, Color32::BLACK), StrokeKind::Middle);
        painter.rect_stroke(r, 0.0, Stroke::new(2.0, Color32::WHITE), StrokeKind::Middle);
    }
    let rects: Vec<(BoxKey, Rect)> = overlay
        .marks
        .iter()
        .map(|m| (m.key, to_screen(m.xyxy)))
        .collect();
    let hovered = response.hover_pos().and_then(|p| {
        rects
            .iter()
            .filter(|(_, r)| r.expand(2.0).contains(p))
            .min_by(|a, b| a.1.area().total_cmp(&b.1.area()))
            .map(|(key, _)| *key)
    });
    // The highlighted box goes last, over the others.
    let mut order: Vec<usize> = (0..overlay.marks.len()).collect();
    order.sort_by_key(|&i| Some(overlay.marks[i].key) == overlay.highlighted);
    for i in order {
        let mark = &overlay.marks[i];
        let lit = Some(mark.key) == overlay.highlighted;
        let color = match overlay.highlighted {
            Some(_) if !lit => mark.color.gamma_multiply(0.35),
            _ => mark.color,
        };
        let r = rects[i].1;
        if lit {
            painter.rect_filled(r, 0.0, color.gamma_multiply(0.3));
        }
        outline(
            &painter,
            r,
            mark.region,
            Stroke::new(if lit { 4.0 } else { 2.0 }, color),
        );
        if let Some(iou) = mark.iou {
            let galley = painter.layout_no_wrap(
                format!("{iou:.2}"),
                FontId::monospace(10.0),
                Color32::BLACK,
            );
            let label = Rect::from_min_size(r.left_top() + Vec2::new(2.0, 1.0), galley.size());
            painter.rect_filled(label.expand(1.0), 2.0, color);
            painter.galley(label.min, galley, Color32::BLACK);
        }
    }
    Drawn { hovered, rects }
}

/// A rectangle outline: solid for think, dashed for rethink, dotted for answer (and for boxes
/// outside every segment, thin solid).
fn outline(painter: &egui::Painter, r: Rect, region: Region, stroke: Stroke) {
    let path = [
        r.left_top(),
        r.right_top(),
        r.right_bottom(),
        r.left_bottom(),
        r.left_top(),
    ];
    match region {
        Region::Think => {
            painter.rect_stroke(r, 0.0, stroke, StrokeKind::Middle);
        }
        Region::Rethink => {
            painter.extend(Shape::dashed_line(&path, stroke, 6.0, 4.0));
        }
        Region::Answer => {
            painter.extend(Shape::dotted_line(
                &path,
                stroke.color,
                5.0,
                stroke.width * 0.8,
            ));
        }
        Region::Outside => {
            painter.rect_stroke(r, 0.0, Stroke::new(1.0, stroke.color), StrokeKind::Middle);
        }
    }
}

/// A legend of the line styles, for the side of the image.
pub fn legend(ui: &mut Ui) {
    ui.horizontal_wrapped(|ui| {
        for (region, name) in [
            (Region::Think, "think"),
            (Region::Rethink, "rethink"),
            (Region::Answer, "answer"),
        ] {
            let (rect, _) = ui.allocate_exact_size(Vec2::new(22.0, 12.0), Sense::hover());
            outline(
                ui.painter(),
                rect.shrink(2.0),
                region,
                Stroke::new(2.0, ui.visuals().text_color()),
            );
            ui.label(name);
        }
        let (rect, _) = ui.allocate_exact_size(Vec2::new(22.0, 12.0), Sense::hover());
        ui.painter().rect_stroke(
            rect.shrink(2.0),
            0.0,
            Stroke::new(2.0, Color32::WHITE),
            StrokeKind::Middle,
        );
        ui.label("ground truth");
    });
}
