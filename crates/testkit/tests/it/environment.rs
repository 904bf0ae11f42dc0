//! A bad environment gives a clear message.

use std::process::Command;

use pg_walstream_testkit::{TestServer, TestkitError, servers};

#[test]
fn unsupported_versions_are_refused_by_name() {
    for version in [13, 19] {
        let error = TestServer::start(version).unwrap_err();
        assert!(matches!(error, TestkitError::UnsupportedVersion(v) if v == version));
        assert!(error.to_string().contains("versions 14 to 18"), "{error}");
        let error = pg_walstream_testkit::ensure_installed(version).unwrap_err();
        assert!(
            matches!(error, TestkitError::UnsupportedVersion(_)),
            "{error}"
        );
    }
}

#[test]
fn an_uncreatable_data_directory_names_the_path() {
    let version = servers()[0].version();
    let error = TestServer::builder(version)
        .base_dir("/proc/pg-walstream-cannot-exist")
        .start()
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("/proc/pg-walstream-cannot-exist"),
        "{message}"
    );
    assert!(matches!(error, TestkitError::Io { .. }), "{error:?}");
}

#[test]
fn a_taken_port_is_retried_on_another() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let server = TestServer::builder(servers()[0].version())
        .preferred_port(port)
        .start()
        .unwrap();
    assert_ne!(server.port(), port);
    std::net::TcpStream::connect(("127.0.0.1", server.port()))
        .expect("the server listens on its new port");
}

#[test]
fn installing_without_npm_says_so() {
    let cache = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_testkit-server"))
        .args(["--install", "16"])
        .env("PATH", "/nonexistent")
        .env("PG_WALSTREAM_PG_CACHE", cache.path())
        .env_remove("PG_WALSTREAM_PG16_BINDIR")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("npm is not available"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
