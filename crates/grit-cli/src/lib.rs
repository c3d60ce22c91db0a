//! Pieces shared by grit's command-line programs.

pub mod data_cmd;
pub mod infer;
pub mod rewards_cmd;
