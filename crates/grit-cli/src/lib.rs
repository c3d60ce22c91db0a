//! Pieces shared by grit's command-line programs.

pub mod infer;
