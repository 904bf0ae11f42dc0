//! `testkit-server [--install] VERSION`: starts a throwaway PostgreSQL server, prints
//! `READY version=… port=… pid=… root=…` and the superuser conninfo, and keeps the server until
//! standard input closes (then stops it and deletes its directory). With `--install`, missing
//! binaries are installed first. Used by the testkit's own cleanup tests and handy by hand.
//!
//! Test hooks: `--then panic` panics after READY (unwinding drops the server), `--then abort`
//! aborts (nothing is dropped; the reaper must clean up).

use std::io::Read as _;
use std::process::ExitCode;

use pg_walstream_testkit::{TestServer, ensure_installed};

fn main() -> ExitCode {
    let mut install = false;
    let mut then = String::from("wait");
    let mut version = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--install" => install = true,
            "--then" => then = args.next().unwrap_or_default(),
            other => version = other.parse::<u32>().ok(),
        }
    }
    let Some(version) = version else {
        eprintln!("usage: testkit-server [--install] [--then wait|panic|abort] VERSION");
        return ExitCode::from(2);
    };
    if install && let Err(error) = ensure_installed(version) {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    let server = match TestServer::start(version) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "READY version={} port={} pid={} root={}",
        server.version(),
        server.port(),
        server.postmaster_pid().unwrap_or(0),
        server.root_dir().display()
    );
    println!("{}", server.admin_conninfo("postgres"));
    match then.as_str() {
        "panic" => panic!("testkit-server: panicking as asked"),
        "abort" => std::process::abort(),
        _ => {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        }
    }
    drop(server);
    ExitCode::SUCCESS
}
