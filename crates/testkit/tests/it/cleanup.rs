//! Servers disappear — processes and directories — however their owner ends.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use pg_walstream_testkit::{TestServer, servers};

use crate::{eventually, exists, process_alive};

/// A `testkit-server` child process and what it reported.
struct Held {
    child: Child,
    postmaster: u32,
    root: PathBuf,
}

fn hold_server(then: &str) -> Held {
    let version = servers()[0].version();
    let mut child = Command::new(env!("CARGO_BIN_EXE_testkit-server"))
        .args(["--then", then, &version.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("testkit-server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("READY "), "testkit-server said {line:?}");
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .to_owned()
    };
    let held = Held {
        postmaster: field("pid").parse().unwrap(),
        root: PathBuf::from(field("root")),
        child,
    };
    assert!(
        process_alive(held.postmaster),
        "the postmaster runs while held"
    );
    assert!(exists(&held.root), "the server directory exists while held");
    held
}

fn assert_cleaned_up(mut held: Held, how: &str) {
    let _ = held.child.wait();
    assert!(
        eventually(15, || !process_alive(held.postmaster)),
        "{how}: postmaster {} still runs",
        held.postmaster
    );
    assert!(
        eventually(15, || !exists(&held.root)),
        "{how}: {} still exists",
        held.root.display()
    );
}

#[test]
fn a_server_is_removed_when_its_owner_exits_normally() {
    let mut held = hold_server("wait");
    drop(held.child.stdin.take());
    assert_cleaned_up(held, "normal exit");
}

#[test]
fn a_server_is_removed_when_its_owner_panics() {
    let held = hold_server("panic");
    assert_cleaned_up(held, "panic");
}

#[test]
fn a_server_is_removed_when_its_owner_aborts_without_dropping() {
    let held = hold_server("abort");
    assert_cleaned_up(held, "abort");
}

#[test]
fn a_server_is_removed_when_its_owner_is_killed() {
    let mut held = hold_server("wait");
    held.child.kill().unwrap();
    assert_cleaned_up(held, "SIGKILL");
}

#[test]
fn dropping_an_owned_server_stops_it_before_drop_returns() {
    let server = TestServer::start(servers()[0].version()).unwrap();
    let pid = server.postmaster_pid().expect("postmaster.pid");
    let root = server.root_dir().to_path_buf();
    assert!(server.is_owned());
    drop(server);
    assert!(!process_alive(pid), "postmaster {pid} survived drop");
    assert!(!exists(&root), "{} survived drop", root.display());
}

#[test]
fn shared_servers_are_not_owned_under_xtask() {
    if std::env::var_os(pg_walstream_testkit::SERVERS_ENV).is_some() {
        assert!(servers().iter().all(|server| !server.is_owned()));
    } else {
        assert!(servers().iter().all(TestServer::is_owned));
    }
}
