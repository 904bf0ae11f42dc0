//! TIMELINE_HISTORY for real: promote a server to make timeline 2, then read its history.

use pg_walstream_slot::{identify_system, timeline_history};
use pg_walstream_testkit::{TestServer, servers};

use crate::replication;

#[tokio::test]
async fn timeline_history_after_a_promotion() {
    for shared in servers() {
        let version = shared.version();
        let server = TestServer::start(version).unwrap();
        let admin = server.admin("postgres").await;
        let before: String = admin
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .unwrap()
            .get(0);
        drop(admin);
        server.stop_server().unwrap();
        std::fs::write(server.data_dir().join("standby.signal"), "").unwrap();
        server.start_again().unwrap();
        let admin = server.admin("postgres").await;
        let promoted: bool = admin
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .unwrap()
            .get(0);
        assert!(promoted, "PostgreSQL {version}: promotion");

        let mut conn = replication(&server, "postgres", "true").await;
        let identity = identify_system(&mut conn).await.unwrap();
        assert_eq!(
            identity.timeline, 2,
            "PostgreSQL {version}: timeline after promotion"
        );
        let history = timeline_history(&mut conn, 2).await.unwrap();
        assert_eq!(history.file_name, "00000002.history");
        assert_eq!(
            history.entries.len(),
            1,
            "PostgreSQL {version}: {:?}",
            history.content
        );
        let entry = &history.entries[0];
        assert_eq!(entry.timeline, 1);
        assert!(
            entry.switchpoint.0 >= before.parse::<pg_walstream_codec::Lsn>().unwrap().0,
            "PostgreSQL {version}"
        );

        let missing = timeline_history(&mut conn, 1).await.unwrap_err();
        assert!(
            missing.db_error().is_some(),
            "PostgreSQL {version}: timeline 1 has no history file: {missing}"
        );
    }
}
