//! The client key file's permissions are checked as libpq checks them (issue 12, item 13):
//! a key accessible by group or others is refused before it is used, except that a
//! root-owned key may be group-readable (0640).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use pg_walstream_testkit::{AuthUser, servers, unique_name};
use pg_walstream_transport::{Backend, Transport, TransportError};

use crate::support::{backend, chain, connect};

/// A copy of the test client key with `mode`, in a fresh directory.
fn key_copy(source: &std::path::Path, mode: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name("pgws_key"));
    std::fs::create_dir_all(&dir).expect("create key directory");
    let key = dir.join("client.key");
    std::fs::copy(source, &key).expect("copy key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
    key
}

#[tokio::test]
async fn group_or_world_readable_keys_are_refused() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("keyperm").await;
        let (cert, key) = server.client_cert_paths();
        for mode in [0o600, 0o400, 0o640, 0o660, 0o644] {
            let copy = key_copy(&key, mode);
            // libpq's rule depends on the file's owner: the copy belongs to whoever runs this.
            let root_owned = std::fs::metadata(&copy).expect("stat").uid() == 0;
            let private = matches!(mode, 0o600 | 0o400);
            let accepted = private || (root_owned && mode == 0o640);
            let ci = format!(
                "host=localhost port={} user={} dbname={db} sslmode=verify-full sslrootcert='{}' sslcert='{}' sslkey='{}'",
                server.port(),
                server.user_name(AuthUser::Cert),
                server.ca_cert_path().display(),
                cert.display(),
                copy.display(),
            );
            let cell = format!("PG {v}: key mode {mode:o}, root-owned {root_owned}");
            match connect(&ci).await {
                Ok(mut conn) if accepted => {
                    assert!(conn.is_tls(), "{cell}");
                    conn.simple_query("SELECT 1").await.expect("query");
                    conn.close().await.expect("close");
                }
                Ok(_) => panic!("{cell}: connected with a group/world-readable key"),
                Err(e) if accepted => panic!("{cell}: {}", chain(&e)),
                Err(e) => {
                    if backend() == Backend::Native {
                        assert!(
                            matches!(&e, TransportError::KeyFilePermissions { mode: m, .. } if *m == mode),
                            "{cell}: {e:?}"
                        );
                    }
                    assert!(
                        chain(&e).contains("has group or world access"),
                        "{cell}: {}",
                        chain(&e)
                    );
                    assert!(chain(&e).contains(&copy.display().to_string()), "{cell}");
                }
            }
            let _ = std::fs::remove_dir_all(copy.parent().expect("key directory"));
        }
    }
}
