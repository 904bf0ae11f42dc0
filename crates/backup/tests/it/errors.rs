//! Bad input: clear errors, nothing left behind.

use pg_walstream_backup::{
    BackupError, BackupOptions, BaseBackup, Compression, CompressionMethod, PlainSink,
};
use pg_walstream_testkit::servers;

use crate::{connect, replication};

#[tokio::test]
async fn unsupported_options_fail_before_sending() {
    for server in servers() {
        let options = BackupOptions {
            compression: Some(Compression {
                long: true,
                ..Compression::new(CompressionMethod::Zstd)
            }),
            ..BackupOptions::default()
        };
        let connection = replication(server).await;
        match BaseBackup::start(connection, &options).await {
            Err(BackupError::Unsupported { option, needs, .. }) => {
                assert!(server.version() < 16);
                let expected = if server.version() < 15 {
                    ("COMPRESSION", 15)
                } else {
                    ("COMPRESSION_DETAIL long", 16)
                };
                assert_eq!((option, needs), expected);
            }
            Ok(mut backup) => {
                assert!(server.version() >= 16);
                // The server runs it (or refuses it when built without zstd).
                while backup.next_event().await.unwrap().is_some() {}
            }
            Err(BackupError::Transport(error)) if server.version() >= 16 => {
                let message = error.to_string();
                assert!(
                    message.contains("does not support compression with ZSTD"),
                    "{message}"
                );
            }
            Err(other) => panic!("PostgreSQL {}: {other:?}", server.version()),
        }
    }
}

#[tokio::test]
async fn a_connection_without_replication_is_refused_by_the_server() {
    for server in servers() {
        let connection = connect(server, &server.admin_conninfo("postgres")).await;
        let error = BaseBackup::start(connection, &BackupOptions::default())
            .await
            .unwrap_err();
        let BackupError::Transport(transport) = &error else {
            panic!("PostgreSQL {}: {error:?}", server.version())
        };
        assert!(transport.code().is_some(), "{transport:?}");
    }
}

#[tokio::test]
async fn extraction_refuses_a_non_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep"), b"mine").unwrap();
    let server = &servers()[0];
    let mut backup = BaseBackup::start(replication(server).await, &BackupOptions::default())
        .await
        .unwrap();
    let mut sink = PlainSink::new(dir.path()).sync(false);
    let error = backup.run_into(&mut sink, |_| {}).await.unwrap_err();
    let BackupError::Io { source, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        source.kind(),
        std::io::ErrorKind::AlreadyExists,
        "{error:?}"
    );
    assert_eq!(std::fs::read(dir.path().join("keep")).unwrap(), b"mine");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
