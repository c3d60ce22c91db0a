//! `grit-view [RUN_DIR]`: the desktop viewer.

use std::path::PathBuf;

use clap::Parser;
use grit_view::ViewerApp;
use grit_view::app::RECENT_KEY;

#[derive(Parser)]
#[command(
    name = "grit-view",
    about = "Watch a grit run: rollouts with their boxes and rewards, curves, evaluations, and ask a checkpoint"
)]
struct Args {
    /// A run directory (what grit-train --out wrote); it is followed while training writes to it.
    run: Option<PathBuf>,
}

fn main() -> eframe::Result {
    let args = Args::parse();
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_inner_size([1500.0, 950.0])
            .with_title("grit-view"),
        ..Default::default()
    };
    eframe::run_native(
        "grit-view",
        options,
        Box::new(move |cc| {
            let recent = cc
                .storage
                .and_then(|s| s.get_string(RECENT_KEY))
                .unwrap_or_default();
            Ok(Box::new(ViewerApp::new(args.run.as_deref(), &recent)))
        }),
    )
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_of_grit_view_has_help() {
        let missing = grit_cli::undocumented_args(&super::Args::command());
        assert!(missing.is_empty(), "{missing:?}");
    }
}
