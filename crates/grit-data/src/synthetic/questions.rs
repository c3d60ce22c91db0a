//! The questions and the scenes built for them. A scene is made for its question rather than the
//! question picked for a random scene, so that answers come out balanced by construction: counts
//! uniform over `min_count..=max_objects`, spatial answers half yes, half no.

use rand::RngExt;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::ShapesConfig;
use super::config::CountBy;
use super::scene::{self, Color, Object, Placed, Shape};

/// Data set name of counting samples (list it in the rewards' `counting_datasets`).
pub const COUNT_DATASET: &str = "shapes_count";
/// Data set name of spatial-relation samples.
pub const SPATIAL_DATASET: &str = "shapes_spatial";

/// Centres must differ by this many pixels along a relation's axis for it to be asked about, so
/// that no answer hinges on a pixel or two.
pub const SPATIAL_MARGIN: f64 = 8.0;

/// What a counting question counts: a colour, a shape, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Category {
    /// `None`: any colour ("How many circles").
    pub color: Option<Color>,
    /// `None`: any shape ("How many red shapes").
    pub shape: Option<Shape>,
}

impl Category {
    fn matches_kind(self, shape: Shape, color: Color) -> bool {
        self.color.is_none_or(|c| c == color) && self.shape.is_none_or(|s| s == shape)
    }

    /// Whether `object` is one of those counted.
    pub fn matches(self, object: &Object) -> bool {
        self.matches_kind(object.shape, object.color)
    }

    /// "red circle", "circle" or "red shape".
    pub fn singular(self) -> String {
        let noun = self.shape.map_or("shape", Shape::name);
        match self.color {
            Some(color) => format!("{} {noun}", color.name()),
            None => noun.to_owned(),
        }
    }

    /// The singular with an "s": every noun here has a regular plural.
    pub fn plural(self) -> String {
        format!("{}s", self.singular())
    }
}

/// Where one object is relative to another, judged on box centres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    LeftOf,
    RightOf,
    Above,
    Below,
}

impl Relation {
    /// Every relation, in a fixed order for sampling.
    pub const ALL: [Relation; 4] = [
        Relation::LeftOf,
        Relation::RightOf,
        Relation::Above,
        Relation::Below,
    ];

    /// How far `subject`'s centre lies in this relation's direction from `reference`'s:
    /// positive when the relation holds.
    fn lead(self, subject: &Object, reference: &Object) -> f64 {
        let ([sx, sy], [rx, ry]) = (subject.center(), reference.center());
        match self {
            Relation::LeftOf => rx - sx,
            Relation::RightOf => sx - rx,
            Relation::Above => ry - sy,
            Relation::Below => sy - ry,
        }
    }

    /// Whether `subject` is in this relation to `reference`.
    pub fn holds(self, subject: &Object, reference: &Object) -> bool {
        self.lead(subject, reference) > 0.0
    }

    /// The words in a question: "to the left of".
    pub fn question_phrase(self) -> &'static str {
        match self {
            Relation::LeftOf => "to the left of",
            Relation::RightOf => "to the right of",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }

    /// The shorter words in a trace: "left of".
    pub fn phrase(self) -> &'static str {
        match self {
            Relation::LeftOf => "left of",
            Relation::RightOf => "right of",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }
}

/// What is asked about a scene; indices refer to the item's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Question {
    /// "How many red circles are there?"
    Count(Category),
    /// "Is the red circle to the left of the blue square?"; both objects are the only ones of
    /// their colour and shape in the image.
    Spatial {
        subject: usize,
        relation: Relation,
        reference: usize,
    },
}

impl Question {
    /// The question as the data file has it.
    pub fn text(&self, objects: &[Object]) -> String {
        match *self {
            Question::Count(category) => format!("How many {} are there?", category.plural()),
            Question::Spatial {
                subject,
                relation,
                reference,
            } => format!(
                "Is the {} {} the {}?",
                objects[subject].label(),
                relation.question_phrase(),
                objects[reference].label()
            ),
        }
    }

    /// The reference answer: a count, or "yes" / "no".
    pub fn answer(&self, objects: &[Object]) -> String {
        match *self {
            Question::Count(_) => self.referents(objects).len().to_string(),
            Question::Spatial {
                subject,
                relation,
                reference,
            } => {
                let holds = relation.holds(&objects[subject], &objects[reference]);
                if holds { "yes" } else { "no" }.to_owned()
            }
        }
    }

    /// The data set name the sample is filed under.
    pub fn dataset(&self) -> &'static str {
        match self {
            Question::Count(_) => COUNT_DATASET,
            Question::Spatial { .. } => SPATIAL_DATASET,
        }
    }

    /// The objects the answer rests on, in the order a trace names them: the counted ones in
    /// reading order, or subject then reference.
    pub fn referents<'a>(&self, objects: &'a [Object]) -> Vec<&'a Object> {
        match *self {
            Question::Count(category) => objects.iter().filter(|o| category.matches(o)).collect(),
            Question::Spatial {
                subject, reference, ..
            } => vec![&objects[subject], &objects[reference]],
        }
    }
}

/// Every (shape, colour) pair, in a fixed order for sampling.
fn kinds() -> Vec<(Shape, Color)> {
    Shape::ALL
        .iter()
        .flat_map(|&shape| Color::ALL.map(|color| (shape, color)))
        .collect()
}

/// A question and the scene made for it, objects in reading order.
pub(super) fn sample(
    config: &ShapesConfig,
    rng: &mut StdRng,
) -> Result<(Question, Vec<Placed>), String> {
    if rng.random_bool(config.counting_fraction) {
        counting(config, rng)
    } else {
        spatial(config, rng)
    }
}

/// A count drawn uniformly from `min_count..=max_objects`, then that many objects of a category and
/// other objects outside it.
fn counting(config: &ShapesConfig, rng: &mut StdRng) -> Result<(Question, Vec<Placed>), String> {
    let count = rng.random_range(config.min_count..=config.max_objects);
    let total = rng.random_range(count.max(config.min_objects)..=config.max_objects);
    let color = *pick(&Color::ALL, rng);
    let shape = *pick(&Shape::ALL, rng);
    let category = match *pick(&config.count_by, rng) {
        CountBy::ColorAndShape => Category {
            color: Some(color),
            shape: Some(shape),
        },
        CountBy::Shape => Category {
            color: None,
            shape: Some(shape),
        },
        CountBy::Color => Category {
            color: Some(color),
            shape: None,
        },
    };
    let (inside, outside): (Vec<_>, Vec<_>) = kinds()
        .into_iter()
        .partition(|&(s, c)| category.matches_kind(s, c));
    let mut chosen: Vec<(Shape, Color)> = (0..total)
        .map(|i| *pick(if i < count { &inside } else { &outside }, rng))
        .collect();
    // Placement favours early objects with room; shuffling keeps size from telling what counts.
    chosen.shuffle(rng);
    let placed = scene::place(config, rng, &chosen, |_| true)?;
    Ok((Question::Count(category), placed))
}

/// Two objects of distinct kinds, unique in the image, and distractors of other kinds; the
/// answer is drawn first and the two swap roles when the layout says otherwise.
fn spatial(config: &ShapesConfig, rng: &mut StdRng) -> Result<(Question, Vec<Placed>), String> {
    let relation = *pick(&Relation::ALL, rng);
    let answer = rng.random_bool(0.5);
    let total = rng.random_range(config.min_objects.max(2)..=config.max_objects);
    let all = kinds();
    let first = *pick(&all, rng);
    let rest: Vec<_> = all.iter().copied().filter(|&k| k != first).collect();
    let second = *pick(&rest, rng);
    let others: Vec<_> = rest.into_iter().filter(|&k| k != second).collect();
    let mut chosen = vec![first, second];
    chosen.extend((2..total).map(|_| *pick(&others, rng)));
    chosen.shuffle(rng);
    let at = |k| chosen.iter().position(|&c| c == k).expect("chosen");
    let (i, j) = (at(first), at(second));
    let placed = scene::place(config, rng, &chosen, |objects| {
        relation.lead(&objects[i], &objects[j]).abs() >= SPATIAL_MARGIN
    })?;
    let at = |k| placed.iter().position(|p| p.kind() == k).expect("placed");
    let (a, b) = (at(first), at(second));
    let holds = relation.holds(&placed[a].object, &placed[b].object);
    let (subject, reference) = if holds == answer { (a, b) } else { (b, a) };
    let question = Question::Spatial {
        subject,
        relation,
        reference,
    };
    Ok((question, placed))
}

fn pick<'a, T>(items: &'a [T], rng: &mut StdRng) -> &'a T {
    items.choose(rng).expect("a non-empty list")
}
