//! Checks of the libpq backend's plumbing that the public API cannot see (issue 12, item 12).

use std::os::fd::AsRawFd;

use pg_walstream_testkit::{AuthUser, servers};

use super::*;

/// What `/proc/self/fd/N` names: `socket:[inode]` for a socket.
fn open_file(fd: i32) -> String {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}"));
    link.unwrap_or_else(|e| panic!("fd {fd}: {e}"))
        .display()
        .to_string()
}

/// The reactor must not hold libpq's own descriptor number: libpq closes it on failure, and
/// the number can be reused before the registration is dropped. It registers a duplicate of
/// the same socket instead.
#[tokio::test]
async fn the_reactor_registers_a_duplicate_of_libpqs_socket() {
    let server = &servers()[0];
    let config = Config::parse(&format!(
        "{} sslmode=require",
        server.conninfo(AuthUser::Scram, "postgres")
    ))
    .expect("conninfo");
    let mut connection = LibpqConnection::connect(&config).await.expect("connect");
    let registered = connection
        .socket
        .as_ref()
        .expect("registered")
        .get_ref()
        .as_raw_fd();
    let libpq = connection.conn.socket().expect("libpq socket");
    assert_ne!(
        registered, libpq,
        "the registration must own its descriptor"
    );
    assert!(open_file(libpq).starts_with("socket:["));
    assert_eq!(open_file(registered), open_file(libpq), "the same socket");
    connection.simple_query("SELECT 1").await.expect("query");
    connection.close().await.expect("close");
}
/// `SSL_pending` is taken from the libssl libpq itself links, found from libpq's own object.
#[test]
fn ssl_pending_comes_from_libpqs_libssl() {
    let object = ffi::ssl_pending_object().expect("SSL_pending found");
    assert!(object.contains("libssl"), "{object}");
    // The loader mapped exactly this file (libpq's dependency) into the process.
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    let name = std::path::Path::new(&object)
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    assert!(maps.contains(&name), "{object} not mapped");
}
