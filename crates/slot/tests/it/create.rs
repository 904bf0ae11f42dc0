//! The CREATE_REPLICATION_SLOT option matrix on every version, and exported snapshots.

use pg_walstream_slot::{
    CreateSlot, ServerVersion, SlotError, SlotName, SnapshotAction, identify_system,
};
use pg_walstream_testkit::{servers, unique_name};
use pg_walstream_transport::Transport;

use crate::replication;

/// One option combination and whether the version supports it.
#[derive(Debug, Clone, Copy)]
struct Options {
    logical: bool,
    temporary: bool,
    two_phase: bool,
    failover: bool,
    reserve_wal: bool,
    snapshot: Option<SnapshotAction>,
}

impl Options {
    fn all() -> Vec<Options> {
        let mut all = Vec::new();
        for temporary in [false, true] {
            for reserve_wal in [false, true] {
                all.push(Options {
                    logical: false,
                    temporary,
                    two_phase: false,
                    failover: false,
                    reserve_wal,
                    snapshot: None,
                });
            }
            for two_phase in [false, true] {
                for failover in [false, true] {
                    for snapshot in [
                        None,
                        Some(SnapshotAction::Export),
                        Some(SnapshotAction::Nothing),
                    ] {
                        all.push(Options {
                            logical: true,
                            temporary,
                            two_phase,
                            failover,
                            reserve_wal: false,
                            snapshot,
                        });
                    }
                }
            }
        }
        all
    }

    fn build(self, name: SlotName) -> CreateSlot {
        let mut create = if self.logical {
            CreateSlot::logical(name)
        } else {
            CreateSlot::physical(name)
        };
        if self.temporary {
            create = create.temporary();
        }
        if self.two_phase {
            create = create.two_phase();
        }
        if self.failover {
            create = create.failover();
        }
        if self.reserve_wal {
            create = create.reserve_wal();
        }
        if let Some(action) = self.snapshot {
            create = create.snapshot(action);
        }
        create
    }

    /// The preflight outcome the library must give on `major`: `None` when supported.
    fn expected_refusal(self, major: u32) -> Option<u32> {
        if self.two_phase && major < 15 {
            return Some(15);
        }
        if self.failover && major < 17 {
            return Some(17);
        }
        None
    }
}

#[tokio::test]
async fn every_supported_option_combination_creates_a_matching_slot() {
    for server in servers() {
        let version = server.version();
        let db = server.create_database("slot_matrix").await;
        let admin = server.admin(&db).await;
        let mut conn = replication(server, &db, "database").await;
        let server_version = ServerVersion::of(&conn).unwrap();
        assert_eq!(server_version.major, version);
        let mut created_count = 0;
        for options in Options::all() {
            let name = SlotName::new(unique_name("matrix")).unwrap();
            let create = options.build(name.clone());
            let result = create.execute(&mut conn).await;
            if options.failover && options.temporary {
                assert!(
                    matches!(result, Err(SlotError::InvalidOptions(_))),
                    "PostgreSQL {version} {options:?}: {result:?}"
                );
                continue;
            }
            if let Some(needs) = options.expected_refusal(version) {
                match result {
                    Err(SlotError::Unsupported { needs: n, .. }) => assert_eq!(n, needs),
                    other => panic!(
                        "PostgreSQL {version} {options:?}: expected a preflight error, got {other:?}"
                    ),
                }
                continue;
            }
            let created =
                result.unwrap_or_else(|error| panic!("PostgreSQL {version} {options:?}: {error}"));
            created_count += 1;
            assert_eq!(created.slot_name, name.as_str());
            // Logical slots export their snapshot unless told otherwise.
            let exports =
                options.logical && matches!(options.snapshot, None | Some(SnapshotAction::Export));
            assert_eq!(
                created.snapshot_name.is_some(),
                exports,
                "PostgreSQL {version} {options:?}: snapshot name {:?}",
                created.snapshot_name
            );
            let mut query =
                String::from("SELECT slot_type, temporary, two_phase, restart_lsn IS NOT NULL");
            query.push_str(if version >= 17 {
                ", failover"
            } else {
                ", false"
            });
            query.push_str(" FROM pg_replication_slots WHERE slot_name = $1");
            let row = admin.query_one(&query, &[&name.as_str()]).await.unwrap();
            let (slot_type, temporary, two_phase, reserved, failover): (
                String,
                bool,
                bool,
                bool,
                bool,
            ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            let context = format!("PostgreSQL {version} {options:?}");
            assert_eq!(
                slot_type,
                if options.logical {
                    "logical"
                } else {
                    "physical"
                },
                "{context}"
            );
            assert_eq!(temporary, options.temporary, "{context}");
            assert_eq!(two_phase, options.two_phase, "{context}");
            assert_eq!(failover, options.failover, "{context}");
            if !options.logical {
                assert_eq!(
                    reserved, options.reserve_wal,
                    "{context}: restart_lsn reserved"
                );
            }
            if !options.temporary {
                pg_walstream_slot::drop_replication_slot(&mut conn, &name, false)
                    .await
                    .unwrap();
            }
        }
        let expected = match version {
            14 => 10,
            15 | 16 => 16,
            _ => 22,
        };
        assert_eq!(
            created_count, expected,
            "PostgreSQL {version}: combinations created"
        );
    }
}

#[tokio::test]
async fn an_exported_snapshot_is_usable_until_the_next_command() {
    for server in servers() {
        let version = server.version();
        let db = server.create_database("slot_snapshot").await;
        let admin = server.admin(&db).await;
        admin
            .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        let mut conn = replication(server, &db, "database").await;
        let name = SlotName::new(unique_name("export")).unwrap();
        let created = CreateSlot::logical(name)
            .temporary()
            .snapshot(SnapshotAction::Export)
            .execute(&mut conn)
            .await
            .unwrap();
        let snapshot = created.snapshot_name.expect("exported snapshot");
        admin
            .batch_execute("INSERT INTO t VALUES (2)")
            .await
            .unwrap();

        let reader = server.admin(&db).await;
        reader
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{snapshot}'"
            ))
            .await
            .unwrap_or_else(|error| panic!("PostgreSQL {version}: importing {snapshot}: {error}"));
        let row = reader
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap();
        assert_eq!(
            row.get::<_, i64>(0),
            1,
            "PostgreSQL {version}: the snapshot predates the second insert"
        );
        reader.batch_execute("COMMIT").await.unwrap();

        identify_system(&mut conn).await.unwrap();
        let late = server.admin(&db).await;
        let error = late
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{snapshot}'"
            ))
            .await
            .expect_err("the snapshot is gone after the next command");
        let message = error
            .as_db_error()
            .map(|db| db.message().to_owned())
            .unwrap_or_default();
        assert!(
            message.contains("snapshot"),
            "PostgreSQL {version}: {error:?}"
        );
    }
}

#[tokio::test]
async fn use_snapshot_reads_inside_the_creating_transaction() {
    for server in servers() {
        let version = server.version();
        let db = server.create_database("slot_use").await;
        server
            .admin(&db)
            .await
            .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (7); GRANT SELECT ON t TO scram_user")
            .await
            .unwrap();
        let mut conn = replication(server, &db, "database").await;
        conn.simple_query("BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ")
            .await
            .unwrap();
        let name = SlotName::new(unique_name("use")).unwrap();
        let created = CreateSlot::logical(name)
            .temporary()
            .snapshot(SnapshotAction::Use)
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(created.snapshot_name, None);
        let sets = conn.simple_query("SELECT id FROM t").await.unwrap();
        assert_eq!(
            sets[0].get_str(0, "id").unwrap(),
            Some("7"),
            "PostgreSQL {version}"
        );
        conn.simple_query("COMMIT").await.unwrap();
    }
}
