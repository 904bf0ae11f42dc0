//! A real primary/standby pair: the standby replays what the primary writes, and promotion
//! moves it to a new timeline.

use pg_walstream_testkit::{TestServer, servers};

async fn insert_lsn(client: &tokio_postgres::Client) -> String {
    client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .unwrap()
        .get(0)
}

async fn current_wal_file(client: &tokio_postgres::Client) -> String {
    client
        .query_one("SELECT pg_walfile_name(pg_current_wal_insert_lsn())", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_replays_the_primary_and_promotes_to_timeline_2() {
    for shared in servers() {
        let version = shared.version();
        let primary = TestServer::start(version).unwrap();
        let admin = primary.admin("postgres").await;
        admin
            .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        let standby = TestServer::start_standby_of(&primary).unwrap();
        admin
            .batch_execute("INSERT INTO t VALUES (2)")
            .await
            .unwrap();
        standby.wait_replayed(&insert_lsn(&admin).await).await;

        let replica = standby.admin("postgres").await;
        let in_recovery: bool = replica
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get(0);
        assert!(
            in_recovery,
            "PostgreSQL {version}: the standby is in recovery"
        );
        let rows: Vec<i32> = replica
            .query("SELECT id FROM t ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(rows, [1, 2], "PostgreSQL {version}: rows replayed");
        let slot = standby.primary_slot_name().expect("standby slot name");
        let active: bool = admin
            .query_one(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            active,
            "PostgreSQL {version}: the standby streams from its slot"
        );
        drop(replica);

        standby.promote().unwrap();
        let promoted = standby.admin("postgres").await;
        promoted
            .batch_execute("INSERT INTO t VALUES (3)")
            .await
            .unwrap();
        let file = current_wal_file(&promoted).await;
        assert!(
            file.starts_with("00000002"),
            "PostgreSQL {version}: promoted standby writes timeline 2, got {file}"
        );
        assert!(
            standby.data_dir().join("pg_wal/00000002.history").is_file(),
            "PostgreSQL {version}: the history file of timeline 2 exists"
        );
    }
}
