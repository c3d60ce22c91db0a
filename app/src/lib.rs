//! grit-view: a desktop viewer for grit runs. It follows a run directory while training writes
//! to it and shows every rollout's boxes and rewards over the image, the training curves, the
//! evaluations, and a checkpoint answering questions live.
//!
//! Data modules read the run files once and index them ([`tail`], [`run`], [`rollouts`],
//! [`eval`], [`ask`]); view modules draw them ([`app`], [`rollouts_view`], [`curves`],
//! [`eval_view`], [`ask_view`]) with shared widgets ([`boxes`], [`text`], [`images`]).

pub mod app;
pub mod ask;
pub mod ask_view;
pub mod boxes;
pub mod curves;
pub mod eval;
pub mod eval_view;
pub mod images;
pub mod rollouts;
pub mod rollouts_view;
pub mod run;
pub mod tail;
pub mod text;

pub use app::{Tab, ViewerApp};
