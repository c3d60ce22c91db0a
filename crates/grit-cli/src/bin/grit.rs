//! `grit`: the GRIT tools, one subcommand each. `grit rewards` audits the rewards of recorded
//! completions.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "grit", version, about = "GRIT grounded-reasoning tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One variant per subcommand; each carries its own `clap::Args` from the library.
#[derive(Debug, Subcommand)]
enum Command {
    /// Compute every GRIT reward for each row of a JSONL file of completions.
    Rewards(grit_cli::rewards_cmd::RewardsArgs),
    /// Tools for GRIT JSONL data files (`grit data check`).
    Data(grit_cli::data_cmd::DataArgs),
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Rewards(args) => {
            let stdout = std::io::stdout();
            grit_cli::rewards_cmd::run(args, &mut stdout.lock())
        }
        Command::Data(args) => {
            let stdout = std::io::stdout();
            if grit_cli::data_cmd::run(args, &mut stdout.lock())? {
                Ok(())
            } else {
                anyhow::bail!("the data has problems (listed above)")
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grit: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_of_grit_has_help() {
        let missing = grit_cli::undocumented_args(&super::Cli::command());
        assert!(missing.is_empty(), "{missing:?}");
    }
}
