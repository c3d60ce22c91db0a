//! `kill -9` in the middle of a run, then `--resume`: the resumed run's steps equal an
//! uninterrupted run's (same seed), on a miniature of the demo config.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::MINIATURE_MODEL;

const STEPS: u64 = 6;

fn config(out: &Path) -> String {
    format!(
        r#"
out = "{}"
seed = 3
[demo]
train_samples = 24
heldout_samples = 4
{MINIATURE_MODEL}
[sft]
steps = 4
batch = 4
learning_rate = 3e-3
[grpo]
steps = {STEPS}
prompts_per_step = 2
group_size = 3
micro_batch = 4
rollout_batch = 6
temperature = 1.0
top_k = 0
max_new_tokens = 12
learning_rate = 1e-2
beta = 0.05
logprob_chunk = 5
[rewards]
counting_datasets = ["shapes_count"]
[eval]
batch = 4
max_new_tokens = 12
[checkpoint]
every = 2
keep = 1
"#,
        out.display()
    )
}

fn grit_train(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grit-train"));
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Runs to the end and returns what it printed on stderr.
fn run_to_end(args: &[&str]) -> String {
    let output = grit_train(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "grit-train {args:?} failed:\n{stderr}"
    );
    stderr
}

/// Rows of a run file without the wall-clock fields, which differ between runs by nature.
fn rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let mut row: Value = serde_json::from_str(line).unwrap();
            for key in ["seconds", "rollout_seconds", "update_seconds"] {
                row.as_object_mut().unwrap().remove(key);
            }
            row
        })
        .collect()
}

fn logged_steps(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_killed_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (straight, killed) = (dir.path().join("straight"), dir.path().join("killed"));
    for out in [&straight, &killed] {
        std::fs::create_dir_all(out).unwrap();
        std::fs::write(out.join("run.toml"), config(out)).unwrap();
    }
    let config_of = |out: &Path| out.join("run.toml").display().to_string();

    run_to_end(&["--config", &config_of(&straight), "--quiet"]);

    // Kill as soon as step 3 is logged: the last checkpoint is step 2, so step 3 is redone.
    let mut child = grit_train(&["--config", &config_of(&killed), "--quiet"])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while logged_steps(&killed.join("metrics.jsonl")) < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(started.elapsed() < Duration::from_secs(600), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(logged_steps(&killed.join("metrics.jsonl")) < STEPS as usize);

    let checkpoint = std::fs::read_dir(killed.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("step-"))
        .expect("a checkpoint was written before the kill");
    let step: u64 = checkpoint["step-".len()..].parse().unwrap();
    let stderr = run_to_end(&["--resume", &killed.display().to_string()]);
    assert!(
        stderr.contains(&format!("resuming after step {step} ")),
        "the resumed run did not start from {checkpoint}:\n{stderr}"
    );

    let (a, b) = (
        rows(&straight.join("metrics.jsonl")),
        rows(&killed.join("metrics.jsonl")),
    );
    assert_eq!(a.len(), STEPS as usize);
    assert_eq!(a, b, "metrics differ after resuming");
    assert_eq!(
        rows(&straight.join("rollouts.jsonl")).len(),
        rows(&killed.join("rollouts.jsonl")).len()
    );
    // Completions, rewards and advantages are equal; only the image paths name other folders.
    let strip = |rows: Vec<Value>| -> Vec<Value> {
        rows.into_iter()
            .map(|mut r| {
                for key in ["image", "source"] {
                    r.as_object_mut().unwrap().remove(key);
                }
                r
            })
            .collect()
    };
    assert_eq!(
        strip(rows(&straight.join("rollouts.jsonl"))),
        strip(rows(&killed.join("rollouts.jsonl")))
    );
    // The final weights are the same bytes.
    let weights = |out: &Path| {
        std::fs::read(out.join(format!("checkpoints/step-{STEPS:06}/model.safetensors"))).unwrap()
    };
    assert!(
        weights(&straight) == weights(&killed),
        "final checkpoints differ"
    );
    // The training actually changed the policy: the loss is not identically zero.
    assert!(a.iter().any(|r| r["grad_norm"].as_f64().unwrap() > 0.0));
}

#[test]
fn starting_over_an_existing_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    std::fs::create_dir_all(out.join("checkpoints/step-000002")).unwrap();
    std::fs::write(out.join("run.toml"), config(&out)).unwrap();
    let output = grit_train(&[
        "--config",
        &out.join("run.toml").display().to_string(),
        "--quiet",
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already holds a run"), "{stderr}");
}
