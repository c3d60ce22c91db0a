//! The viewer driven headless with egui_kittest on the committed fixture run
//! (`tests/fixtures/run`: steps 1–3, two prompts with four completions each, 64×64 images).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use grit_view::{Tab, ViewerApp};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run")
}

fn harness(app: ViewerApp) -> Harness<'static, ViewerApp> {
    Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut ViewerApp| app.show(ui), app)
}

#[test]
fn hovering_a_coordinate_highlights_its_box_and_the_reverse() {
    let mut h = harness(ViewerApp::new(Some(&fixture()), ""));
    h.run_steps(2);
    h.get_by_label_contains("step 3 · prompt 1 ·").click();
    h.run_steps(2);

    let (group, key) = {
        let run = h.state().run().expect("the fixture opens");
        let group = run.rollouts.find(3, 1).unwrap();
        let second = run.rollouts.group(group).members[1];
        (group, (second, 1))
    };
    assert_eq!(h.state().rollouts.selected_group(), Some(group));
    assert_eq!(h.state().rollouts.highlighted_box(), None);

    // The second completion's second box: `[41,15,61,35]` in its text.
    let coordinates = h.state().rollouts.coordinate_rect(key).unwrap();
    h.hover_at(coordinates.center());
    h.run_steps(2);
    assert_eq!(h.state().rollouts.highlighted_box(), Some(key));

    // And back: the pointer on the first completion's first box on the image.
    let first = h.state().run().unwrap().rollouts.group(group).members[0];
    let on_image = h.state().rollouts.box_rect((first, 0)).unwrap();
    h.hover_at(on_image.center());
    h.run_steps(2);
    assert_eq!(h.state().rollouts.highlighted_box(), Some((first, 0)));

    // Nothing is drawn in the window's bottom right corner.
    h.hover_at(eframe::egui::pos2(1395.0, 895.0));
    h.run_steps(2);
    assert_eq!(h.state().rollouts.highlighted_box(), None);
}

/// Copies the fixture run into a fresh directory.
fn copy_fixture(to: &Path) {
    copy_dir(&fixture(), to);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Splits a JSONL file after the rows of step 2 plus half of the next line.
fn cut_after_step_2(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let at = text.find("{\"step\":3").unwrap();
    let half = at + 20;
    fs::write(path, &text[..half]).unwrap();
    text[half..].to_owned()
}

#[test]
fn a_half_written_line_is_not_an_error_and_appended_steps_appear() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let metrics_rest = cut_after_step_2(&dir.path().join("metrics.jsonl"));
    let rollouts_rest = cut_after_step_2(&dir.path().join("rollouts.jsonl"));

    let mut h = harness(ViewerApp::new(Some(dir.path()), ""));
    h.run_steps(2);
    {
        let run = h.state().run().unwrap();
        assert_eq!(run.metrics.len(), 2);
        assert_eq!(run.rollouts.len(), 16);
        assert!(run.messages.is_empty(), "{:?}", run.messages);
        assert_eq!(h.state().rollouts.step(), Some(2));
    }

    for (file, rest) in [
        ("metrics.jsonl", metrics_rest),
        ("rollouts.jsonl", rollouts_rest),
    ] {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(file))
            .unwrap();
        f.write_all(rest.as_bytes()).unwrap();
    }
    h.state_mut().refresh();
    h.run_steps(2);
    let run = h.state().run().unwrap();
    assert_eq!(run.metrics.len(), 3);
    assert_eq!(run.rollouts.len(), 24);
    // The view follows the newest step.
    assert_eq!(h.state().rollouts.step(), Some(3));
}

#[test]
fn a_broken_line_is_a_message_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let path = dir.path().join("metrics.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("this is not json\n{text}")).unwrap();
    let mut h = harness(ViewerApp::new(Some(dir.path()), ""));
    h.run_steps(2);
    let run = h.state().run().unwrap();
    assert_eq!(run.metrics.len(), 3);
    assert_eq!(run.messages.len(), 1);
    assert!(
        run.messages[0].contains("metrics.jsonl:1:"),
        "{:?}",
        run.messages
    );
    h.get_by_label_contains("1 problem(s) reading the run");

    let missing = ViewerApp::new(Some(&dir.path().join("nope")), "");
    assert!(missing.run().is_none());
    assert!(missing.open_error().unwrap().contains("is not a directory"));
}

#[test]
fn clicking_a_curve_opens_that_steps_rollouts() {
    let mut h = harness(ViewerApp::new(Some(&fixture()), ""));
    h.run_steps(2);
    h.get_by_label("Curves").click();
    h.run_steps(2);
    assert_eq!(h.state().tab, Tab::Curves);
    // The chart under the title "total reward": its middle is step 2 of steps 1–3.
    let title = h.get_by_label("total reward").rect();
    let middle = eframe::egui::pos2(title.left() + 165.0, title.bottom() + 80.0);
    h.hover_at(middle);
    h.run_steps(1);
    h.event(eframe::egui::Event::PointerButton {
        pos: middle,
        button: eframe::egui::PointerButton::Primary,
        pressed: true,
        modifiers: Default::default(),
    });
    h.run_steps(1);
    h.event(eframe::egui::Event::PointerButton {
        pos: middle,
        button: eframe::egui::PointerButton::Primary,
        pressed: false,
        modifiers: Default::default(),
    });
    h.run_steps(2);
    assert_eq!(h.state().tab, Tab::Rollouts);
    assert_eq!(h.state().rollouts.step(), Some(2));
}

#[test]
fn evaluations_are_listed_with_their_summary() {
    let mut h = harness(ViewerApp::new(Some(&fixture()), ""));
    h.run_steps(2);
    h.get_by_label("Evaluation").click();
    h.run_steps(2);
    let run = h.state().run().unwrap();
    let before = run.evaluations.get("before").unwrap();
    assert_eq!(before.samples.len(), 2);
    assert_eq!(before.summary.as_ref().unwrap().per_dataset.len(), 2);
    h.get_by_label("shapes_spatial");
    h.get_by_label_contains("train.jsonl:2 · shapes_spatial")
        .click();
    h.run_steps(2);
    h.get_by_label("Is the red square to the left of the blue circle?");
}

#[test]
fn the_report_grid_appears_in_the_evaluation_view_once_written() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let mut h = harness(ViewerApp::new(Some(dir.path()), ""));
    h.run_steps(2);
    h.get_by_label("Evaluation").click();
    h.run_steps(2);
    assert!(h.query_by_label("before/after grid").is_none());

    image::RgbImage::from_pixel(60, 30, image::Rgb([0, 170, 60]))
        .save(dir.path().join("report-grid.png"))
        .unwrap();
    h.state_mut().refresh();
    h.run_steps(2);
    h.get_by_label("before/after grid").click();
    h.run_steps(2);
    h.get_by_label_contains("before GRPO-GR | after");
}
