//! `grit-infer`: one image, one question; the grounded reasoning streams to the terminal, then
//! the answer and the boxes in original pixels (optionally drawn onto the image, or as JSON).

// glibc hands large freed blocks back to the OS and faults them in again on every step.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = grit_cli::infer::Args::parse();
    match grit_cli::infer::run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grit-infer: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
