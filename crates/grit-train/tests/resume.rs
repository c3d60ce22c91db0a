//! The run directory under crashes and mistakes, on a miniature of the demo: a run killed with
//! SIGKILL at random moments and resumed each time equals an uninterrupted run byte for byte;
//! a second writer is refused; a full disk is an error naming the file that loses nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

mod common;
use common::MINIATURE_MODEL;

const STEPS: u64 = 6;

/// A miniature run checkpointing every step (`keep` 1) with a constant learning rate, so that
/// a run extended to more steps trains its first steps as a longer run would.
fn config(out: &Path, steps: u64) -> String {
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
steps = {steps}
prompts_per_step = 2
group_size = 3
micro_batch = 4
rollout_batch = 6
temperature = 1.0
top_k = 0
max_new_tokens = 12
learning_rate = 1e-2
schedule = "constant"
beta = 0.05
logprob_chunk = 5
[rewards]
counting_datasets = ["shapes_count"]
[eval]
batch = 4
max_new_tokens = 12
[checkpoint]
every = 1
keep = 1
"#,
        out.display()
    )
}

/// A run directory with its config file beside it.
fn prepare(dir: &Path, name: &str, steps: u64) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{name}.toml")), config(&out, steps)).unwrap();
    out
}

fn config_file(out: &Path) -> String {
    format!("{}.toml", out.display())
}

fn grit_train(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grit-train"));
    command
        .args(args)
        .arg("--quiet")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// The command that continues `out`: `--resume` once it has its config, else the first one.
fn continue_run(out: &Path) -> Command {
    if out.join("config.toml").is_file() {
        grit_train(&["--resume", &out.display().to_string()])
    } else {
        grit_train(&["--config", &config_file(out)])
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn run_to_end(mut command: Command) -> String {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    stderr(&output)
}

/// `metrics.jsonl` as text with the wall-clock values (which differ between runs by nature)
/// masked; everything else must match byte for byte.
fn metrics_text(out: &Path) -> String {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let mut masked = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = [
        "\"seconds\":",
        "\"rollout_seconds\":",
        "\"update_seconds\":",
    ]
    .iter()
    .filter_map(|key| rest.find(key).map(|i| (i, key.len())))
    .min()
    {
        let (start, len) = at;
        masked.push_str(&rest[..start + len]);
        masked.push('_');
        rest = rest[start + len..].trim_start_matches(|c: char| {
            c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')
        });
    }
    masked.push_str(rest);
    masked
}

fn file(out: &Path, name: &str) -> Vec<u8> {
    std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("{}/{name}: {e}", out.display()))
}

fn weights(out: &Path, step: u64) -> Vec<u8> {
    file(
        out,
        &format!("checkpoints/step-{step:06}/model.safetensors"),
    )
}

/// Asserts that `out` holds exactly the run `straight` holds.
fn assert_same_run(straight: &Path, out: &Path, steps: u64) {
    assert_eq!(
        metrics_text(straight),
        metrics_text(out),
        "metrics.jsonl differs"
    );
    assert!(
        file(straight, "rollouts.jsonl") == file(out, "rollouts.jsonl"),
        "rollouts.jsonl differs"
    );
    assert!(
        weights(straight, steps) == weights(out, steps),
        "final weights differ"
    );
}

fn kill(mut child: Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn a_run_killed_at_random_moments_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let straight = prepare(dir.path(), "straight", STEPS);
    let started = Instant::now();
    run_to_end(grit_train(&["--config", &config_file(&straight)]));
    let whole = started.elapsed();
    // The policy really trains: some step has a gradient.
    let metrics = std::fs::read_to_string(straight.join("metrics.jsonl")).unwrap();
    assert!(metrics.lines().any(|line| {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        row["grad_norm"].as_f64().unwrap() > 0.0
    }));

    let chaos = prepare(dir.path(), "chaos", STEPS);
    let logged =
        || std::fs::read_to_string(chaos.join("metrics.jsonl")).map_or(0, |t| t.lines().count());
    // Each kill waits for a random number of logged steps, then a random part of a step, so
    // the kills land inside steps, checkpoints and log writes alike.
    let mut rng = StdRng::seed_from_u64(19);
    let slice = whole / (4 * STEPS as u32);
    let mut kills = Vec::new();
    for _ in 0..6 {
        if logged() >= STEPS as usize {
            break;
        }
        let target = rng.random_range(logged()..STEPS as usize);
        let delay = slice.mul_f64(rng.random_range(0.0..1.0));
        let child = continue_run(&chaos).spawn().unwrap();
        let started = Instant::now();
        while logged() < target && started.elapsed() < whole * 4 {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(delay);
        let at = logged();
        kill(child);
        kills.push(format!(
            "{} ms (steps logged: {at})",
            started.elapsed().as_millis()
        ));
    }
    println!(
        "uninterrupted: {} ms; SIGKILL after {}",
        whole.as_millis(),
        kills.join(", ")
    );
    assert!(
        kills
            .iter()
            .any(|k| !k.ends_with(&format!("logged: {STEPS})"))),
        "every kill came after the last step: {kills:?}"
    );
    run_to_end(continue_run(&chaos));
    assert_same_run(&straight, &chaos, STEPS);
}

#[test]
fn a_second_writer_is_refused_and_starting_over_a_run_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = prepare(dir.path(), "run", STEPS);
    let first = grit_train(&["--config", &config_file(&out)])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !out.join("config.toml").is_file() {
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = grit_train(&["--resume", &out.display().to_string()])
        .output()
        .unwrap();
    let message = stderr(&second);
    println!("{message}");
    assert!(!second.status.success());
    assert!(
        message.contains("is being written by another process (grit-train, pid"),
        "{message}"
    );
    let evaluator = Command::new(env!("CARGO_BIN_EXE_grit-eval"))
        .args(["--model", "unused", "--data", "unused.jsonl", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!evaluator.status.success());
    kill(first);
    // Once the writer is gone, whether it ended or was killed, its lock is gone too.
    run_to_end(continue_run(&out));
    let again = grit_train(&["--config", &config_file(&out)])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already holds a run"),
        "{}",
        stderr(&again)
    );
}

/// `grit-train` with a file-size limit (`ulimit -f`) of `bytes`.
fn limited(mut command: Command, bytes: u64) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec, only async-signal-safe calls (setrlimit).
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// `--resume` under a file-size limit of `bytes` fails with an error naming `file`.
fn resume_fails_on_a_file_too_large(out: &Path, bytes: u64, file: &str) {
    let failed = limited(continue_run(out), bytes).output().unwrap();
    let message = stderr(&failed);
    println!("{message}");
    assert!(!failed.status.success());
    assert!(
        message.contains(file) && message.contains("File too large"),
        "{message}"
    );
}

#[test]
fn a_full_disk_is_an_error_naming_the_file_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let straight = prepare(dir.path(), "straight", 4);
    run_to_end(grit_train(&["--config", &config_file(&straight)]));

    // Two steps, then the run is extended to four, as a user extends a run.
    let out = prepare(dir.path(), "full", 2);
    run_to_end(grit_train(&["--config", &config_file(&out)]));
    let resolved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    std::fs::write(
        out.join("config.toml"),
        resolved.replace("steps = 2\n", "steps = 4\n"),
    )
    .unwrap();

    // The checkpoint of step 3 does not fit: the logs of step 3 do.
    let rollouts = len(&out.join("rollouts.jsonl"));
    let model = len(&out.join("checkpoints/step-000002/model.safetensors"));
    let limit = 3 * rollouts;
    assert!(
        limit < model,
        "the model ({model} B) must exceed the limit ({limit} B)"
    );
    resume_fails_on_a_file_too_large(&out, limit, "model.safetensors");
    assert!(
        out.join("checkpoints/step-000002/model.safetensors")
            .is_file()
    );

    // Now a log line does not fit: the half line it wrote is taken back.
    resume_fails_on_a_file_too_large(&out, rollouts + 10, "rollouts.jsonl");
    for log in ["rollouts.jsonl", "metrics.jsonl"] {
        assert!(
            file(&out, log).ends_with(b"\n"),
            "{log} ends in a torn line"
        );
    }
    // The steps before the failure are all there; step 3 is redone on the next resume.
    let logged = String::from_utf8(file(&out, "metrics.jsonl")).unwrap();
    assert_eq!(logged.lines().count(), 2);

    // With room again, the run ends as if nothing had happened.
    run_to_end(continue_run(&out));
    assert_same_run(&straight, &out, 4);
}
