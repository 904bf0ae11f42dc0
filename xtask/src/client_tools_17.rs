//! `pg_combinebackup` 17 for the incremental backup test on 17: no Debian 12 package ships
//! client tools 17, and pg_combinebackup 18 refuses a 17 backup (its pg_control layout
//! differs). Debian 13 ("trixie") ships `postgresql-client-17`, built against glibc 2.41; this
//! machine's glibc is older, so the binary runs through Debian 13's own dynamic loader, with
//! Debian 13's glibc first on the library path and this machine's libraries (libcrypto) after
//! it. Both packages are fetched with apt from the Debian archive, verified against the
//! archive keyring, into a private apt state under target/bench-tools: the system's apt
//! sources and package database are not touched.

use std::path::{Path, PathBuf};
use std::process::Command;

use pg_walstream_testkit::reports_major_version;

use crate::process::run;

/// Debian 13's packages: the client tools, and the glibc they were built against.
const PACKAGES: [&str; 2] = ["postgresql-client-17", "libc6"];

/// The archive keyring that signs Debian 13's release files (in Debian 12's
/// `debian-archive-keyring`).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The programs the wrapper scripts start: only what a test needs.
const TOOLS: [&str; 1] = ["pg_combinebackup"];

/// The directory of wrapper scripts for client tools 17
/// ([`pg_walstream_testkit::client_tools_17_bindir`]), installed on first use.
///
/// # Errors
/// No apt-get or dpkg-deb, no archive keyring, a download that failed, or a tool that does not
/// start.
pub(crate) fn ensure_client_tools_17() -> Result<PathBuf, String> {
    let bin = pg_walstream_testkit::client_tools_17_bindir();
    if TOOLS
        .iter()
        .all(|tool| reports_major_version(&bin.join(tool), 17))
    {
        return Ok(bin);
    }
    let root = bin
        .parent()
        .ok_or("client tools 17: no parent directory")?
        .to_path_buf();
    eprintln!(
        "xtask: installing pg_combinebackup 17 from Debian 13's {} (with its glibc) into {}",
        PACKAGES[0],
        root.display()
    );
    if !Path::new(KEYRING).is_file() {
        return Err(format!(
            "client tools 17 come from the Debian archive, verified with {KEYRING}: install \
             debian-archive-keyring"
        ));
    }
    let _ = std::fs::remove_dir_all(&root);
    let debs = download(&root)?;
    let client = root.join("client");
    let glibc = root.join("glibc");
    for (deb, into) in debs.iter().zip([&client, &glibc]) {
        let mut extract = Command::new("dpkg-deb");
        extract.arg("-x").arg(deb).arg(into);
        run(extract)?;
    }
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    for tool in TOOLS {
        write_wrapper(&bin.join(tool), &client, &glibc, tool)?;
        if !reports_major_version(&bin.join(tool), 17) {
            return Err(format!(
                "{}: does not report version 17 (run it to see why)",
                bin.join(tool).display()
            ));
        }
    }
    Ok(bin)
}

/// Downloads [`PACKAGES`] (newest Debian 13 versions) with apt into `root/debs`, through apt
/// state of its own under `root/apt`; their paths, in [`PACKAGES`]' order.
fn download(root: &Path) -> Result<Vec<PathBuf>, String> {
    let apt = root.join("apt");
    let debs = root.join("debs");
    for dir in [
        apt.join("lists/partial"),
        apt.join("cache/archives/partial"),
        debs.clone(),
    ] {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let sources = apt.join("sources.list");
    std::fs::write(
        &sources,
        format!("deb [signed-by={KEYRING}] http://deb.debian.org/debian trixie main\n"),
    )
    .map_err(|e| format!("{}: {e}", sources.display()))?;
    let apt_get = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command
            .current_dir(&debs)
            .arg("-qq")
            .arg("-o")
            .arg(format!("Dir::Etc::SourceList={}", sources.display()))
            .args(["-o", "Dir::Etc::SourceParts=/dev/null"])
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", apt.join("lists").display()))
            .arg("-o")
            .arg(format!("Dir::Cache={}", apt.join("cache").display()))
            // Private state: no lock on the system's, and no sandbox user that could not
            // write under target/.
            .args(["-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"])
            .args(args);
        run(command).map_err(|e| format!("apt-get (Debian 13 packages for client tools 17): {e}"))
    };
    apt_get(&["update"])?;
    let mut download = vec!["download"];
    download.extend(PACKAGES);
    apt_get(&download)?;
    let names: Vec<String> = std::fs::read_dir(&debs)
        .map_err(|e| format!("{}: {e}", debs.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    PACKAGES
        .iter()
        .map(|package| {
            names
                .iter()
                .find(|name| {
                    name.starts_with(&format!("{package}_"))
                        && Path::new(name).extension().is_some_and(|ext| ext == "deb")
                })
                .map(|name| debs.join(name))
                .ok_or_else(|| format!("apt-get download left no {package} package"))
        })
        .collect()
}

/// A shell script at `path` that runs `tool` of `client` through `glibc`'s loader.
fn write_wrapper(path: &Path, client: &Path, glibc: &Path, tool: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let program = client.join("usr/lib/postgresql/17/bin").join(tool);
    let loader = glibc.join("usr/lib64/ld-linux-x86-64.so.2");
    for needed in [&program, &loader] {
        if !needed.is_file() {
            return Err(format!("{}: not in the package", needed.display()));
        }
        if needed.to_string_lossy().contains('\'') {
            return Err(format!("{}: a quote in the path", needed.display()));
        }
    }
    let libraries = format!(
        "{}:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu",
        glibc.join("usr/lib/x86_64-linux-gnu").display()
    );
    let script = format!(
        "#!/bin/sh\n# {tool} 17 from Debian 13, started by Debian 13's glibc loader \
         (cargo xtask test installs it).\nexec '{}' --library-path '{libraries}' '{}' \"$@\"\n",
        loader.display(),
        program.display()
    );
    std::fs::write(path, script).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))
}
