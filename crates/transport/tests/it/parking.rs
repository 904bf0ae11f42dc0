//! `Transport::park_reads`: a connection taken off the reactor still delivers what arrived
//! while it was parked, and writes on it work, with and without TLS.

use std::time::Duration;

use pg_walstream_testkit::{AuthUser, servers, unique_name};
use pg_walstream_transport::Transport;

use crate::support::{chain, connect};

/// A standby status update confirming nothing (flush LSN 0), asking for no reply.
fn status_update() -> Vec<u8> {
    let mut update = vec![b'r'];
    update.extend_from_slice(&[0; 24]);
    update.extend_from_slice(&0i64.to_be_bytes());
    update.push(0);
    update
}

#[tokio::test]
async fn a_parked_connection_delivers_what_arrived_meanwhile() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("parking").await;
        let admin = server.admin(&db).await;
        admin
            .batch_execute("CREATE TABLE t(id int); CREATE PUBLICATION p FOR TABLE t")
            .await
            .expect("setup");
        for sslmode in ["disable", "require"] {
            let ctx = format!("PG {v}, sslmode={sslmode}");
            let conninfo = format!(
                "{} sslmode={sslmode} replication=database",
                server.conninfo(AuthUser::Scram, &db)
            );
            let mut conn = connect(&conninfo)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: {}", chain(&e)));
            let slot = unique_name("park");
            conn.simple_query(&format!(
                "CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput"
            ))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: slot: {e}"));
            conn.copy_both(&format!(
                "START_REPLICATION SLOT {slot} LOGICAL 0/0 \
                 (proto_version '1', publication_names 'p')"
            ))
            .await
            .unwrap_or_else(|e| panic!("{ctx}: START_REPLICATION: {e}"));
            // Parked twice (a no-op the second time), the transaction is committed and sent
            // while nobody watches the socket; a write in between takes it back and the
            // second park takes it off again.
            conn.park_reads().expect("park");
            conn.park_reads().expect("park again");
            admin
                .batch_execute("INSERT INTO t VALUES (1)")
                .await
                .expect("insert");
            conn.write_copy_data(&status_update())
                .expect("queue update");
            conn.flush()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: flush: {e}"));
            conn.park_reads().expect("park after the write");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut kinds = Vec::new();
            while !kinds.contains(&b'C') {
                let frame = tokio::time::timeout(Duration::from_secs(30), conn.read_copy_data())
                    .await
                    .unwrap_or_else(|_| panic!("{ctx}: nothing read after parking: {kinds:?}"))
                    .unwrap_or_else(|e| panic!("{ctx}: read: {e}"))
                    .unwrap_or_else(|| panic!("{ctx}: stream ended"));
                if frame.first() == Some(&b'w') {
                    kinds.push(*frame.get(25).expect("pgoutput message"));
                    // Parks between frames too: buffered frames stay readable.
                    conn.park_reads().expect("park between frames");
                }
            }
            assert_eq!(kinds, [b'B', b'R', b'I', b'C'], "{ctx}");
            conn.send_copy_done()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: CopyDone: {e}"));
            while conn
                .read_copy_data()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: drain: {e}"))
                .is_some()
            {}
            conn.close()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
        }
    }
}
