//! Pieces shared by grit's command-line programs.

pub mod data_cmd;
pub mod infer;
pub mod rewards_cmd;

/// The flags and arguments of `command` and its subcommands that have no help line, as
/// `subcommand --flag`: what every program's tests check is empty.
pub fn undocumented_args(command: &clap::Command) -> Vec<String> {
    let own = command
        .get_arguments()
        .filter(|arg| arg.get_help().is_none() && !arg.is_hide_set())
        .map(|arg| format!("{} --{}", command.get_name(), arg.get_id()));
    let nested = command.get_subcommands().flat_map(undocumented_args);
    own.chain(nested).collect()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_of_grit_infer_has_help() {
        let missing = super::undocumented_args(&super::infer::Args::command());
        assert!(missing.is_empty(), "{missing:?}");
    }
}
