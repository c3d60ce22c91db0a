//! The GRIT data schema (spec §6), loading JSONL files, and checking them against their images.
//!
//! One JSON object a line: `question`, `answer`, `image` (relative to the dataset's image
//! folder), `dataset`, optional `bboxs` (`[[x1, y1, x2, y2], …]`, float original pixels),
//! `width`, `height`. Unknown keys are ignored. Blank lines are skipped silently.
//!
//! Decisions:
//! - `answer` is a string in the official files; a JSON **number** is accepted too and kept as
//!   its JSON text (`5` → `"5"`, `2.5` → `"2.5"`), because derived counting files often store
//!   counts as numbers and the judge compares text anyway. Any other type is an error.
//! - `bboxs: null` is the same as no `bboxs`; every box must have exactly four numbers.
//! - `width` / `height` are non-negative integers.
//! - Image sizes in [`check`] are the **upright** size, after the EXIF orientation, i.e. the
//!   size [`load_image`] returns and the model sees. They are read from the header (cheap)
//!   unless [`CheckOptions::decode`] asks for a full decode.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use image::metadata::Orientation;
use image::{ImageDecoder, ImageReader};
use serde::{Deserialize, Deserializer, Serialize};

use crate::files::{FileError, read_text};
use crate::preprocess::load_image;

/// One line of a GRIT JSONL file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub question: String,
    #[serde(deserialize_with = "string_or_number")]
    pub answer: String,
    /// Relative to the dataset's image folder.
    pub image: String,
    pub dataset: String,
    /// Ground-truth boxes `[x1, y1, x2, y2]` in original pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bboxs: Option<Vec<[f64; 4]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

impl Sample {
    /// The ground-truth boxes, empty when there are none.
    pub fn gt_boxes(&self) -> &[[f64; 4]] {
        self.bboxs.as_deref().unwrap_or(&[])
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(match n.as_f64().filter(|_| n.is_f64()) {
            Some(x) => python_float_str(x),
            None => n.to_string(),
        }),
        serde_json::Value::Bool(b) => Ok(if b { "True" } else { "False" }.to_owned()),
        other => Err(serde::de::Error::custom(format!(
            "`answer` must be a string, a number or a boolean, not {other}"
        ))),
    }
}

/// Python's `str(x)` of a float, which the official loader applies to every answer (`2.0` →
/// `"2.0"`, `1e16` → `"1e+16"`, `1e-5` → `"1e-05"`): the shortest round-trip digits, written
/// positionally when the exponent is in −4..16.
fn python_float_str(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let (sign, mantissa) = mantissa
        .strip_prefix('-')
        .map_or(("", mantissa), |m| ("-", m));
    if !(-4..16).contains(&exponent) {
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs());
    }
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let point = exponent + 1;
    let text = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{text}")
}

/// A JSONL file and the folder its `image` paths are relative to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSource {
    pub file: PathBuf,
    pub images: PathBuf,
}

impl DataSource {
    /// Pairs files with image folders: one folder for every file, or one folder per file.
    pub fn pair(files: &[PathBuf], image_dirs: &[PathBuf]) -> Result<Vec<Self>, DatasetError> {
        let images = |i: usize| match image_dirs {
            [one] => one.clone(),
            many => many[i].clone(),
        };
        if image_dirs.len() != 1 && image_dirs.len() != files.len() {
            return Err(DatasetError::Pairing {
                files: files.len(),
                dirs: image_dirs.len(),
            });
        }
        Ok(files
            .iter()
            .enumerate()
            .map(|(i, file)| Self {
                file: file.clone(),
                images: images(i),
            })
            .collect())
    }
}

/// A place in a file: `file:line`, lines counted from 1.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A line that is not a valid [`Sample`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineError {
    pub at: Location,
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{0}")]
    Line(LineError),
    #[error("{files} data files but {dirs} image folders: give one folder, or one per file")]
    Pairing { files: usize, dirs: usize },
}

/// A sample with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub sample: Sample,
    pub at: Location,
    /// The image folder joined with [`Sample::image`].
    pub image_path: PathBuf,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Skip malformed lines (recorded in [`Loaded::skipped`]) instead of failing on the first.
    pub skip_bad_lines: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Loaded {
    pub records: Vec<Record>,
    /// The malformed lines skipped, with why (only with [`LoadOptions::skip_bad_lines`]).
    pub skipped: Vec<LineError>,
}

/// Parses one line (1-based `line`); `Ok(None)` for a blank line.
fn parse_line(file: &Path, line: usize, text: &str) -> Result<Option<Sample>, LineError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|e| LineError {
        at: Location {
            file: file.to_path_buf(),
            line,
        },
        // serde_json's own line is always 1 here; keep the column.
        reason: format!("{} (column {})", strip_position(&e), e.column()),
    })
}

/// serde_json's message without its trailing " at line L column C".
fn strip_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

/// Loads the samples of several files.
///
/// # Errors
/// A file that cannot be read; the first malformed line, naming `file:line` and why, unless
/// [`LoadOptions::skip_bad_lines`].
pub fn load(sources: &[DataSource], options: LoadOptions) -> Result<Loaded, DatasetError> {
    let mut loaded = Loaded::default();
    for source in sources {
        let text = read_text(&source.file)?;
        for (i, line) in text.lines().enumerate() {
            match parse_line(&source.file, i + 1, line) {
                Ok(None) => {}
                Ok(Some(sample)) => loaded.records.push(Record {
                    image_path: source.images.join(&sample.image),
                    at: Location {
                        file: source.file.clone(),
                        line: i + 1,
                    },
                    sample,
                }),
                Err(e) if options.skip_bad_lines => loaded.skipped.push(e),
                Err(e) => return Err(DatasetError::Line(e)),
            }
        }
    }
    Ok(loaded)
}

/// What [`check`] can find wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The data file cannot be read.
    UnreadableFile,
    /// Not JSON, or not a [`Sample`].
    MalformedLine,
    MissingImage,
    /// The image exists but cannot be opened or decoded.
    UnreadableImage,
    /// x2 < x1 or y2 < y1.
    InvertedBox,
    /// A coordinate below 0 or beyond the image's width or height.
    BoxOutsideImage,
    /// `width` / `height` differ from the image's.
    SizeMismatch,
}

impl ProblemKind {
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::UnreadableFile => "unreadable file",
            ProblemKind::MalformedLine => "malformed line",
            ProblemKind::MissingImage => "missing image",
            ProblemKind::UnreadableImage => "unreadable image",
            ProblemKind::InvertedBox => "inverted box",
            ProblemKind::BoxOutsideImage => "box outside image",
            ProblemKind::SizeMismatch => "size mismatch",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Line 0 for a problem with the whole file.
    pub at: Location,
    pub kind: ProblemKind,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.line == 0 {
            write!(
                f,
                "{}: {}: {}",
                self.at.file.display(),
                self.kind,
                self.message
            )
        } else {
            write!(f, "{}: {}: {}", self.at, self.kind, self.message)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckOptions {
    /// Decode every image with [`load_image`] instead of reading only its header.
    pub decode: bool,
    /// Box coordinates may exceed the image by this many pixels before they count as outside.
    pub box_tolerance: f64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            decode: false,
            box_tolerance: 0.0,
        }
    }
}

/// Everything [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub files: usize,
    /// Non-blank lines read.
    pub lines: usize,
    /// Lines that parsed as samples.
    pub samples: usize,
    /// Distinct images opened.
    pub images: usize,
    /// In file order, then line order.
    pub problems: Vec<Problem>,
    pub counts: BTreeMap<ProblemKind, usize>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn push(&mut self, at: &Location, kind: ProblemKind, message: String) {
        *self.counts.entry(kind).or_default() += 1;
        self.problems.push(Problem {
            at: at.clone(),
            kind,
            message,
        });
    }
}

/// The upright size of an image, as [`load_image`] returns it; also the stored (pre-rotation)
/// size when the EXIF orientation swaps the axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dimensions {
    upright: (u32, u32),
    stored: (u32, u32),
}

fn image_dimensions(path: &Path, decode: bool) -> Result<Dimensions, String> {
    if decode {
        let image = load_image(path).map_err(|e| e.to_string())?;
        let upright = image.dimensions();
        return Ok(Dimensions {
            upright,
            stored: upright,
        });
    }
    let mut decoder = ImageReader::open(path)
        .and_then(ImageReader::with_guessed_format)
        .map_err(|e| e.to_string())?
        .into_decoder()
        .map_err(|e| e.to_string())?;
    let stored = decoder.dimensions();
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let swaps = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let upright = if swaps { (stored.1, stored.0) } else { stored };
    Ok(Dimensions { upright, stored })
}

/// Checks data files against their images: malformed lines, missing or unreadable images,
/// inverted boxes, boxes outside the image, and `width` / `height` that disagree with it. Boxes
/// are checked against `width` / `height` when the image cannot be read.
pub fn check(sources: &[DataSource], options: &CheckOptions) -> Report {
    let mut report = Report {
        files: sources.len(),
        ..Report::default()
    };
    let mut cache: BTreeMap<PathBuf, Result<Dimensions, (ProblemKind, String)>> = BTreeMap::new();
    for source in sources {
        let text = match read_text(&source.file) {
            Ok(text) => text,
            Err(e) => {
                let at = Location {
                    file: source.file.clone(),
                    line: 0,
                };
                let message = match e {
                    FileError::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                report.push(&at, ProblemKind::UnreadableFile, message);
                continue;
            }
        };
        for (i, line) in text.lines().enumerate() {
            let at = Location {
                file: source.file.clone(),
                line: i + 1,
            };
            let sample = match parse_line(&source.file, i + 1, line) {
                Ok(None) => continue,
                Ok(Some(sample)) => sample,
                Err(e) => {
                    report.lines += 1;
                    report.push(&at, ProblemKind::MalformedLine, e.reason);
                    continue;
                }
            };
            report.lines += 1;
            report.samples += 1;
            let path = source.images.join(&sample.image);
            let dims = cache
                .entry(path.clone())
                .or_insert_with(|| {
                    if !path.is_file() {
                        Err((ProblemKind::MissingImage, "no such file".to_owned()))
                    } else {
                        image_dimensions(&path, options.decode)
                            .map_err(|e| (ProblemKind::UnreadableImage, e))
                    }
                })
                .clone();
            check_sample(&mut report, &at, &sample, &path, dims, options);
        }
    }
    report.images = cache.values().filter(|d| d.is_ok()).count();
    report
}

fn check_sample(
    report: &mut Report,
    at: &Location,
    sample: &Sample,
    path: &Path,
    dims: Result<Dimensions, (ProblemKind, String)>,
    options: &CheckOptions,
) {
    let size = match dims {
        Ok(dims) => {
            let (w, h) = dims.upright;
            if let (Some(sw), Some(sh)) = (sample.width, sample.height)
                && (sw, sh) != (w, h)
            {
                let note = if (sw, sh) == dims.stored && dims.stored != dims.upright {
                    " (the stored size before the EXIF rotation)"
                } else {
                    ""
                };
                report.push(
                    at,
                    ProblemKind::SizeMismatch,
                    format!(
                        "width×height {sw}×{sh}{note} but {} is {w}×{h}",
                        path.display()
                    ),
                );
            } else if sample.width.is_some_and(|sw| sw != w)
                || sample.height.is_some_and(|sh| sh != h)
            {
                report.push(
                    at,
                    ProblemKind::SizeMismatch,
                    format!(
                        "width {:?}, height {:?} but {} is {w}×{h}",
                        sample.width,
                        sample.height,
                        path.display()
                    ),
                );
            }
            Some((w, h))
        }
        Err((kind, message)) => {
            report.push(at, kind, format!("{}: {message}", path.display()));
            sample.width.zip(sample.height)
        }
    };
    for (k, b) in sample.gt_boxes().iter().enumerate() {
        let [x1, y1, x2, y2] = *b;
        let shown = format!("box {k} [{x1}, {y1}, {x2}, {y2}]");
        if x2 < x1 || y2 < y1 {
            let axis = match (x2 < x1, y2 < y1) {
                (true, true) => "x2 < x1 and y2 < y1",
                (true, false) => "x2 < x1",
                _ => "y2 < y1",
            };
            report.push(at, ProblemKind::InvertedBox, format!("{shown}: {axis}"));
        }
        if let Some((w, h)) = size {
            let t = options.box_tolerance;
            let (w, h) = (f64::from(w), f64::from(h));
            let outside = [x1, y1, x2, y2].iter().any(|&v| v < -t)
                || x1.max(x2) > w + t
                || y1.max(y2) > h + t;
            if outside {
                report.push(
                    at,
                    ProblemKind::BoxOutsideImage,
                    format!("{shown} outside the {w}×{h} image"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const GOOD: &str = r#"{"question": "How many cats?", "answer": "2", "image": "a.png", "dataset": "tallyqa", "bboxs": [[0, 0, 2, 2], [1.5, 0.5, 3, 3]], "width": 4, "height": 3, "extra": [1]}"#;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        path
    }

    fn sources(file: PathBuf, images: &Path) -> Vec<DataSource> {
        vec![DataSource {
            file,
            images: images.to_path_buf(),
        }]
    }

    #[test]
    fn float_answers_read_as_python_writes_them() {
        let cases = [
            (2.0, "2.0"),
            (2.5, "2.5"),
            (-0.5, "-0.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (123.456, "123.456"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (x, python) in cases {
            assert_eq!(python_float_str(x), python);
        }
        let row = |answer: &str| {
            serde_json::from_str::<Sample>(&format!(
                r#"{{"question": "q", "answer": {answer}, "image": "b", "dataset": "d"}}"#
            ))
            .unwrap()
            .answer
        };
        assert_eq!(row("3"), "3");
        assert_eq!(row("3.0"), "3.0");
        assert_eq!(row("1e16"), "1e+16");
    }

    #[test]
    fn parses_the_schema_and_ignores_unknown_keys() {
        let s: Sample = serde_json::from_str(GOOD).unwrap();
        assert_eq!(s.answer, "2");
        assert_eq!(s.gt_boxes(), [[0., 0., 2., 2.], [1.5, 0.5, 3., 3.]]);
        assert_eq!((s.width, s.height), (Some(4), Some(3)));
        let minimal: Sample = serde_json::from_str(
            r#"{"question": "q", "answer": 3, "image": "b.jpg", "dataset": "vsr", "bboxs": null}"#,
        )
        .unwrap();
        assert_eq!(minimal.answer, "3");
        assert_eq!(minimal.gt_boxes(), &[] as &[[f64; 4]]);
        let float: Sample = serde_json::from_str(
            r#"{"question": "q", "answer": 2.5, "image": "b", "dataset": "d"}"#,
        )
        .unwrap();
        assert_eq!(float.answer, "2.5");
        // The official loader's `str(answer)`, and its keys `split` and `key_words` pass.
        let official: Sample = serde_json::from_str(
            r#"{"question": "q", "answer": true, "image": "b", "dataset": "mme", "split": "val", "key_words": ["cat"]}"#,
        )
        .unwrap();
        assert_eq!(official.answer, "True");
        for bad in [
            r#"{"question": "q", "answer": null, "image": "b", "dataset": "d"}"#,
            r#"{"question": "q", "answer": "a", "image": "b"}"#,
            r#"{"question": "q", "answer": "a", "image": "b", "dataset": "d", "bboxs": [[1, 2, 3]]}"#,
        ] {
            assert!(serde_json::from_str::<Sample>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn load_fails_on_a_bad_line_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "d.jsonl",
            &format!("{GOOD}\n\n{{not json\n{GOOD}\n"),
        );
        let err = load(&sources(file.clone(), dir.path()), LoadOptions::default()).unwrap_err();
        let DatasetError::Line(e) = &err else {
            panic!("{err}")
        };
        assert_eq!(
            e.at,
            Location {
                file: file.clone(),
                line: 3
            }
        );
        assert!(
            err.to_string()
                .starts_with(&format!("{}:3: ", file.display())),
            "{err}"
        );
    }

    #[test]
    fn load_skips_bad_lines_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let missing_key = r#"{"question": "q", "answer": "a", "image": "b"}"#;
        let file = write(
            dir.path(),
            "d.jsonl",
            &format!("{GOOD}\r\n{{not json\n\n{missing_key}\n{GOOD}"),
        );
        let options = LoadOptions {
            skip_bad_lines: true,
        };
        let loaded = load(&sources(file.clone(), dir.path()), options).unwrap();
        let lines: Vec<usize> = loaded.records.iter().map(|r| r.at.line).collect();
        assert_eq!(lines, [1, 5]);
        assert_eq!(loaded.records[0].image_path, dir.path().join("a.png"));
        let skipped: Vec<usize> = loaded.skipped.iter().map(|e| e.at.line).collect();
        assert_eq!(skipped, [2, 4]);
        assert!(loaded.skipped[1].reason.contains("missing field `dataset`"));
    }

    #[test]
    fn load_reports_a_missing_file() {
        let err = load(
            &sources(PathBuf::from("/nonexistent/d.jsonl"), Path::new("/")),
            LoadOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, DatasetError::File(FileError::Io { .. })));
        assert!(err.to_string().contains("/nonexistent/d.jsonl"));
    }

    #[test]
    fn pairing_files_with_folders() {
        let files = [PathBuf::from("a"), PathBuf::from("b")];
        let one = DataSource::pair(&files, &[PathBuf::from("i")]).unwrap();
        assert_eq!(one[1].images, PathBuf::from("i"));
        let two = DataSource::pair(&files, &[PathBuf::from("i"), PathBuf::from("j")]).unwrap();
        assert_eq!(two[1].images, PathBuf::from("j"));
        assert!(DataSource::pair(&files, &[]).is_err());
    }

    #[test]
    fn check_finds_every_planted_problem() {
        let dir = tempfile::tempdir().unwrap();
        image::RgbImage::new(4, 3)
            .save(dir.path().join("a.png"))
            .unwrap();
        write(dir.path(), "broken.png", "not a png");
        let lines = [
            GOOD.to_owned(),
            "{not json".to_owned(),
            GOOD.replace("a.png", "nope.png"),
            GOOD.replace("[1.5, 0.5, 3, 3]", "[1, 1, 5, 3]"),
            GOOD.replace("[0, 0, 2, 2]", "[2, 0, 1, 2]"),
            GOOD.replace("\"width\": 4", "\"width\": 5"),
            GOOD.replace("a.png", "broken.png"),
        ];
        let file = write(dir.path(), "d.jsonl", &lines.join("\n"));
        for decode in [false, true] {
            let options = CheckOptions {
                decode,
                ..Default::default()
            };
            let report = check(&sources(file.clone(), dir.path()), &options);
            let found: Vec<(usize, ProblemKind)> = report
                .problems
                .iter()
                .map(|p| (p.at.line, p.kind))
                .collect();
            assert_eq!(
                found,
                [
                    (2, ProblemKind::MalformedLine),
                    (3, ProblemKind::MissingImage),
                    (4, ProblemKind::BoxOutsideImage),
                    (5, ProblemKind::InvertedBox),
                    (6, ProblemKind::SizeMismatch),
                    (7, ProblemKind::UnreadableImage),
                ]
            );
            assert_eq!((report.lines, report.samples, report.images), (7, 6, 1));
            assert_eq!(report.counts[&ProblemKind::MissingImage], 1);
            assert!(!report.is_ok());
        }
        let good = write(dir.path(), "good.jsonl", GOOD);
        assert!(check(&sources(good, dir.path()), &CheckOptions::default()).is_ok());
    }

    /// A JPEG stored 84×60 with EXIF orientation 6 is 60×84 upright, from the header as from
    /// a full decode.
    #[test]
    fn sizes_are_upright() {
        let images = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/preprocess/exif6_jpeg_84x60");
        let dir = tempfile::tempdir().unwrap();
        let row = |w: u32, h: u32| {
            format!(
                r#"{{"question": "q", "answer": "a", "image": "input.jpg", "dataset": "d", "width": {w}, "height": {h}}}"#
            )
        };
        let file = write(
            dir.path(),
            "d.jsonl",
            &format!("{}\n{}", row(60, 84), row(84, 60)),
        );
        for decode in [false, true] {
            let options = CheckOptions {
                decode,
                ..Default::default()
            };
            let report = check(&sources(file.clone(), &images), &options);
            assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
            let problem = &report.problems[0];
            assert_eq!(
                (problem.at.line, problem.kind),
                (2, ProblemKind::SizeMismatch)
            );
            assert!(problem.message.ends_with("input.jpg is 60×84"));
            assert_eq!(
                problem.message.contains("before the EXIF rotation"),
                !decode,
                "{}",
                problem.message
            );
        }
    }

    #[test]
    fn box_tolerance() {
        let dir = tempfile::tempdir().unwrap();
        image::RgbImage::new(4, 3)
            .save(dir.path().join("a.png"))
            .unwrap();
        let file = write(
            dir.path(),
            "d.jsonl",
            &GOOD.replace("[1.5, 0.5, 3, 3]", "[0, 0, 4.5, 3]"),
        );
        let strict = check(&sources(file.clone(), dir.path()), &CheckOptions::default());
        assert_eq!(strict.counts[&ProblemKind::BoxOutsideImage], 1);
        let options = CheckOptions {
            box_tolerance: 0.5,
            ..Default::default()
        };
        assert!(check(&sources(file, dir.path()), &options).is_ok());
    }
}
