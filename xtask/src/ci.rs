//! `cargo xtask ci`: what CI checks, in the order that fails fastest.

use pg_walstream_testkit::SUPPORTED_VERSIONS;

use crate::process::{cargo, run as run_command};

pub(crate) fn run() -> Result<(), String> {
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

    crate::test::run_versions(&SUPPORTED_VERSIONS)
}
