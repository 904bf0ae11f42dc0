//! `cargo xtask ci`: what CI checks, in the order that fails fastest.

use pg_walstream_testkit::SUPPORTED_VERSIONS;

use crate::process::{cargo, run as run_command};

/// Seconds each fuzz target runs in `cargo xtask ci`.
const FUZZ_SECONDS_IN_CI: u64 = 15;

/// fmt check, clippy `-D warnings`, docs `-D warnings`, the codec's no_std build, a
/// no-default-features check, every test on all five versions, the heavy chaos run on 16 and
/// 17, then a short fuzz run.
pub(crate) fn run() -> Result<(), String> {
    crate::deps::ensure_libpq_build_deps()?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run_command(fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]);
    run_command(clippy)?;

    let mut docs = cargo();
    docs.args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run_command(docs)?;

    let mut no_std = cargo();
    no_std.args(["build", "-p", "pg-walstream-codec", "--no-default-features"]);
    run_command(no_std)?;

    let mut minimal = cargo();
    minimal.args(["check", "--workspace", "--no-default-features"]);
    run_command(minimal)?;

    crate::test::run_versions(&SUPPORTED_VERSIONS)?;

    // The heavy chaos run: a million rows under faults on 16 and 17 (~45 s each).
    crate::test::run_chaos(
        &crate::test::HEAVY_CHAOS_VERSIONS,
        crate::test::HEAVY_CHAOS_ROWS,
    )?;

    // A short fuzz run of every target: catches regressions of the committed corpus and
    // shallow new crashes; long runs are `cargo xtask fuzz --time N`.
    if !crate::fuzz::targets().unwrap_or_default().is_empty() {
        crate::fuzz::fuzz(None, FUZZ_SECONDS_IN_CI)?;
    }
    Ok(())
}
