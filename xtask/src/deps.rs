//! Build prerequisites that are not Rust crates: libclang (bindgen, for `libpq-sys`) and the
//! libpq headers. Installed with apt when running as root on Debian, otherwise a clear error.

use std::path::Path;
use std::process::Command;

use crate::process::run;

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
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if !is_root || Command::new("apt-get").arg("--version").output().is_err() {
        return Err(format!(
            "building the libpq backend needs {}: install them (Debian: apt-get install {}), \
             or set LIBCLANG_PATH to a directory with libclang.so",
            missing.join(" and "),
            missing.join(" ")
        ));
    }
    eprintln!(
        "xtask: installing {} for the libpq backend",
        missing.join(" ")
    );
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    run(update)?;
    let mut install = Command::new("apt-get");
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing);
    run(install)
}

fn has_libclang() -> bool {
    if let Some(dir) = std::env::var_os("LIBCLANG_PATH") {
        return Path::new(&dir).exists();
    }
    let Ok(entries) = std::fs::read_dir("/usr/lib") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let name = entry.file_name();
        name.to_string_lossy().starts_with("llvm-")
            && std::fs::read_dir(entry.path().join("lib")).is_ok_and(|libs| {
                libs.filter_map(Result::ok)
                    .any(|lib| lib.file_name().to_string_lossy().starts_with("libclang"))
            })
    })
}
