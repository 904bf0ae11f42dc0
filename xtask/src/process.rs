//! Running child commands with their output streaming to the terminal.

use std::path::Path;
use std::process::Command;

/// Runs `command` in the workspace root (unless it names a directory), inheriting stdio; a
/// non-zero exit is an error.
pub(crate) fn run(mut command: Command) -> Result<(), String> {
    if command.get_current_dir().is_none() {
        command.current_dir(pg_walstream_testkit::workspace_root());
    }
    let line = describe(&command);
    eprintln!("xtask: running {line}");
    let status = command
        .status()
        .map_err(|error| format!("could not run `{line}`: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed ({status})"))
    }
}

/// `cargo` as invoked by `cargo xtask` (the same toolchain).
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Whether `program` runs at all with `args` (e.g. a `--version` probe).
pub(crate) fn available(program: impl AsRef<Path>, args: &[&str]) -> bool {
    Command::new(program.as_ref())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}
