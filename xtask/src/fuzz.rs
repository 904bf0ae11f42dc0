//! `cargo xtask fuzz [--time SECS] [TARGET]`: run cargo-fuzz targets of `fuzz/` on the stable
//! toolchain (no sanitizer), each for a bounded time, against its committed corpus.

use std::path::PathBuf;
use std::process::Command;

use clap::Args;
use pg_walstream_testkit::workspace_root;

use crate::process::{available, cargo, run};

/// Arguments of `cargo xtask fuzz`.
#[derive(Debug, Args)]
pub(crate) struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Run only this target (default: every target in fuzz/fuzz_targets).
    target: Option<String>,
}

pub(crate) fn run_fuzz(args: &FuzzArgs) -> Result<(), String> {
    fuzz(args.target.as_deref(), args.time)
}

/// Runs `target` (or all targets) for `seconds` each.
pub(crate) fn fuzz(target: Option<&str>, seconds: u64) -> Result<(), String> {
    let all = targets()?;
    let chosen: Vec<String> = match target {
        Some(name) if all.iter().any(|t| t == name) => vec![name.to_owned()],
        Some(name) => {
            return Err(format!(
                "no fuzz target {name:?}; targets: {}",
                all.join(", ")
            ));
        }
        None => all,
    };
    ensure_cargo_fuzz()?;
    let fuzz_dir = workspace_root().join("fuzz");
    for target in chosen {
        let corpus = fuzz_dir.join("corpus").join(&target);
        std::fs::create_dir_all(&corpus)
            .map_err(|error| format!("creating {}: {error}", corpus.display()))?;
        // New inputs go to a scratch corpus (the first directory); the committed seed corpus
        // is only read, so a fuzz run leaves the checkout unchanged.
        let scratch = workspace_root()
            .join("target")
            .join("fuzz-corpus")
            .join(&target);
        std::fs::create_dir_all(&scratch)
            .map_err(|error| format!("creating {}: {error}", scratch.display()))?;
        let mut command = cargo();
        // In the workspace root (where `run` starts it), cargo-fuzz finds fuzz/.
        command
            .args(["fuzz", "run", "-s", "none", &target])
            .arg(&scratch)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"));
        run(command).map_err(|error| {
            format!("{error}\nthe crashing input is under fuzz/artifacts/{target}/; add it as a regression test")
        })?;
    }
    Ok(())
}

/// The fuzz targets: the file stems of `fuzz/fuzz_targets/*.rs`.
pub(crate) fn targets() -> Result<Vec<String>, String> {
    let dir: PathBuf = workspace_root().join("fuzz").join("fuzz_targets");
    let entries =
        std::fs::read_dir(&dir).map_err(|error| format!("reading {}: {error}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    Ok(names)
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let cargo_program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    if available(&cargo_program, &["fuzz", "--version"]) {
        return Ok(());
    }
    eprintln!("xtask: cargo-fuzz is missing; installing it (about a minute)");
    let mut install = Command::new(&cargo_program);
    install.args(["install", "--locked", "cargo-fuzz"]);
    run(install)
        .map_err(|error| format!("{error}\ninstall it yourself: cargo install --locked cargo-fuzz"))
}
