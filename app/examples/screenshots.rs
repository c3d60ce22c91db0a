//! Renders the rollouts, curves and evaluation views of a run to PNG files, headless, with
//! egui_kittest's wgpu renderer (any Vulkan driver, Mesa's lavapipe included):
//!
//! ```sh
//! cargo run -p grit-view --example screenshots -- RUN_DIR docs/
//! ```
//!
//! The rollouts view shows the newest step's group with the largest advantage spread, with the
//! pointer on the first box's coordinates so that the box and its text are both highlighted;
//! the evaluation view shows the report's before/after grid when the run has written one.

use std::path::{Path, PathBuf};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use grit_view::rollouts::SortBy;
use grit_view::{Tab, ViewerApp};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(run), Some(out)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: screenshots RUN_DIR OUT_DIR");
    };
    std::fs::create_dir_all(&out)?;
    let out = out.canonicalize()?;
    // Opened by its name from its parent, so that the pictures show no path of this machine.
    let run = run.canonicalize()?;
    let (Some(parent), Some(name)) = (run.parent(), run.file_name()) else {
        anyhow::bail!("{} has no parent directory", run.display());
    };
    std::env::set_current_dir(parent)?;
    let app = ViewerApp::new(Some(Path::new(name)), "");
    if let Some(error) = app.open_error() {
        anyhow::bail!("{error}");
    }
    let mut h = Harness::builder()
        .with_size([1600.0, 1000.0])
        .wgpu()
        .build_ui_state(|ui, app: &mut ViewerApp| app.show(ui), app);
    h.run_steps(2);

    let picked = {
        let rollouts = &h.state().run().expect("opened").rollouts;
        let newest = rollouts.steps().next_back().unwrap_or_default();
        let spread = |g: usize| rollouts.group(g).max_abs_advantage;
        let group = rollouts
            .groups_of(newest)
            .iter()
            .copied()
            .max_by(|&a, &b| spread(a).total_cmp(&spread(b)));
        group.map(|g| {
            let with_box = rollouts
                .members_sorted(g, SortBy::Index)
                .into_iter()
                .find(|&i| !rollouts.get(i).row.boxes.is_empty());
            (g, with_box)
        })
    };
    if let Some((group, with_box)) = picked {
        h.state_mut().open_group(group);
        h.run_steps(2);
        if let Some(rect) = with_box.and_then(|i| h.state().rollouts.coordinate_rect((i, 0))) {
            h.hover_at(rect.center());
        }
    }
    h.run_steps(2);
    save(&mut h, &out.join("rollouts.png"))?;

    h.state_mut().tab = Tab::Curves;
    h.run_steps(3);
    save(&mut h, &out.join("curves.png"))?;

    h.state_mut().tab = Tab::Evaluation;
    h.run_steps(2);
    if let Some(grid) = h.query_by_label("before/after grid") {
        grid.click();
    }
    h.run_steps(3);
    save(&mut h, &out.join("evaluation.png"))?;
    Ok(())
}

fn save(h: &mut Harness<'_, ViewerApp>, path: &std::path::Path) -> anyhow::Result<()> {
    let image = h.render().map_err(anyhow::Error::msg)?;
    image.save(path)?;
    println!("wrote {}", path.display());
    Ok(())
}
