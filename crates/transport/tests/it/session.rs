//! An established session: simple queries, errors, notices, CopyBoth, CopyOut, cancel, close.

use std::fmt::Write as _;
use std::time::Duration;

use pg_walstream_testkit::{AuthUser, TestServer, servers, unique_name};
use pg_walstream_transport::{Connection, Response, Severity, SqlState, Transport, TransportError};

use crate::support::{chain, connect};

/// Waits until backend `pid` is running a statement containing `pg_sleep` (polling
/// `pg_stat_activity`), so a cancel or terminate that follows hits the running query rather
/// than racing its start.
async fn wait_until_sleeping(admin: &tokio_postgres::Client, pid: i32) {
    loop {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep(30)%'",
                &[&pid],
            )
            .await
            .expect("pg_stat_activity");
        if row.get::<_, i64>(0) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server process id of `conn`'s session.
async fn backend_pid(conn: &mut Connection) -> i32 {
    let sets = conn
        .simple_query("SELECT pg_backend_pid() AS pid")
        .await
        .expect("pid");
    sets[0]
        .get_str(0, "pid")
        .expect("pid")
        .expect("not null")
        .parse()
        .expect("numeric pid")
}

async fn session(server: &TestServer, db: &str, replication: Option<&str>) -> Connection {
    let mut ci = server.conninfo(AuthUser::Scram, db);
    ci.push_str(" sslmode=require");
    if let Some(r) = replication {
        write!(ci, " replication={r}").expect("write to String");
    }
    connect(&ci)
        .await
        .unwrap_or_else(|e| panic!("PG {}: {}", server.version(), chain(&e)))
}

#[tokio::test]
async fn simple_queries_rows_tags_and_errors() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("simple").await;
        let mut conn = session(server, &db, None).await;
        assert_eq!(
            conn.server_version_num().map(|n| n / 10_000),
            Some(v),
            "PG {v}"
        );
        let debug = format!("{conn:?}");
        let password = AuthUser::Scram.password().expect("password");
        assert!(
            !debug.contains(password),
            "PG {v}: Debug shows the password: {debug}"
        );

        let sets = conn
            .simple_query("SELECT 1 AS one, NULL::text AS nothing, 'x' || 'y' AS xy; SELECT generate_series(1, 3) AS n; SET application_name = 'it'")
            .await
            .expect("queries");
        assert_eq!(sets.len(), 3, "PG {v}");
        assert_eq!(sets[0].columns(), ["one", "nothing", "xy"], "PG {v}");
        assert_eq!(sets[0].get_str(0, "one").expect("one"), Some("1"));
        assert_eq!(sets[0].get_str(0, "nothing").expect("nothing"), None);
        assert_eq!(sets[0].get_str(0, "xy").expect("xy"), Some("xy"));
        assert_eq!(sets[0].command_tag(), "SELECT 1");
        let ns: Vec<_> = sets[1]
            .rows()
            .iter()
            .map(|r| r.get_str(0).expect("n").expect("not null").to_owned())
            .collect();
        assert_eq!(ns, ["1", "2", "3"], "PG {v}");
        assert_eq!(sets[1].command_tag(), "SELECT 3");
        assert!(sets[2].columns().is_empty() && sets[2].rows().is_empty());
        assert_eq!(sets[2].command_tag(), "SET");
        assert_eq!(
            conn.parameter("application_name"),
            Some("it"),
            "ParameterStatus tracked, PG {v}"
        );

        let err = conn
            .simple_query("SELEC 1")
            .await
            .expect_err("syntax error");
        let db_err = err.db_error().expect("server error");
        assert_eq!(db_err.code, SqlState::SYNTAX_ERROR, "PG {v}");
        assert_eq!(db_err.severity, Severity::Error);
        assert_eq!(db_err.position, Some(1), "PG {v}");
        assert!(
            err.to_string()
                .starts_with("server error: ERROR: syntax error"),
            "PG {v}: {err}"
        );

        let err = conn
            .simple_query("SELECT 1/0")
            .await
            .expect_err("division by zero");
        assert_eq!(
            err.code().map(|c| c.code().to_owned()),
            Some("22012".to_owned()),
            "unknown codes kept, PG {v}"
        );

        // Still usable after errors; notices are surfaced.
        conn.simple_query("DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$")
            .await
            .expect("DO");
        let notices = conn.take_notices();
        assert_eq!(notices.len(), 1, "PG {v}");
        assert_eq!(notices[0].severity, Severity::Notice);
        assert_eq!(notices[0].message, "hello 42");
        assert!(conn.take_notices().is_empty());
        conn.close().await.expect("close");
    }
}

#[tokio::test]
async fn copy_out_stream() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("copyout").await;
        let mut conn = session(server, &db, None).await;
        conn.send_query("SELECT 'before' AS b; COPY (SELECT i, repeat('x', 100) FROM generate_series(1, 5000) i) TO STDOUT")
            .await
            .expect("send");
        let Response::ResultSet(before) = conn.next_response().await.expect("first result") else {
            panic!("PG {v}")
        };
        assert_eq!(before.get_str(0, "b").expect("b"), Some("before"));
        assert_eq!(
            conn.next_response().await.expect("copy"),
            Response::CopyOut,
            "PG {v}"
        );
        let mut lines = 0;
        let mut bytes = 0;
        while let Some(data) = conn.read_copy_data().await.expect("copy data") {
            lines += data.split(|&b| b == b'\n').count() - 1;
            bytes += data.len();
        }
        assert_eq!(lines, 5000, "PG {v}");
        assert!(bytes > 5000 * 100, "PG {v}");
        let Response::ResultSet(done) = conn.next_response().await.expect("tag") else {
            panic!("PG {v}")
        };
        assert_eq!(done.command_tag(), "COPY 5000");
        assert_eq!(conn.next_response().await.expect("ready"), Response::Ready);
        conn.close().await.expect("close");
    }
}

#[tokio::test]
async fn logical_copy_both_round_trip() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("copyboth").await;
        let admin = server.admin(&db).await;
        admin
            .batch_execute(
                "CREATE TABLE t(id int primary key, v text); CREATE PUBLICATION p FOR TABLE t",
            )
            .await
            .expect("setup");
        let mut conn = session(server, &db, Some("database")).await;
        let ident = conn
            .simple_query("IDENTIFY_SYSTEM")
            .await
            .expect("IDENTIFY_SYSTEM");
        assert_eq!(
            ident[0].columns(),
            ["systemid", "timeline", "xlogpos", "dbname"],
            "PG {v}"
        );
        assert_eq!(
            ident[0].get_str(0, "dbname").expect("dbname"),
            Some(db.as_str())
        );

        let slot = unique_name("slot");
        conn.simple_query(&format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput"))
            .await
            .expect("create slot");
        let err = conn
            .simple_query(&format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput"))
            .await
            .expect_err("dup");
        assert_eq!(err.code(), Some(SqlState::DUPLICATE_OBJECT), "PG {v}");
        admin
            .batch_execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
            .await
            .expect("insert");

        conn.copy_both(&format!(
            "START_REPLICATION SLOT {slot} LOGICAL 0/0 (proto_version '1', publication_names 'p')"
        ))
        .await
        .expect("START_REPLICATION");
        // Read XLogData frames until the commit ('C' in pgoutput) of the insert arrives.
        let mut kinds = Vec::new();
        while !kinds.contains(&b'C') {
            // The inserted transaction was committed before START_REPLICATION: the server
            // sends it, so this loop ends without a deadline of its own.
            let frame = conn
                .read_copy_data()
                .await
                .expect("read")
                .expect("stream open");
            match frame.first() {
                Some(b'w') => kinds.push(*frame.get(25).expect("pgoutput message")),
                Some(b'k') => {
                    // Answer a keepalive with a standby status update (flushed LSN 0: nothing confirmed).
                    let mut update = vec![b'r'];
                    update.extend_from_slice(&[0; 24]);
                    update.extend_from_slice(&0i64.to_be_bytes());
                    update.push(0);
                    conn.write_copy_data(&update).expect("queue update");
                    conn.flush().await.expect("flush");
                }
                other => panic!("PG {v}: unexpected frame {other:?}"),
            }
        }
        assert_eq!(
            kinds,
            [b'B', b'R', b'I', b'I', b'C'],
            "Begin, Relation, 2 Inserts, Commit; PG {v}"
        );
        conn.send_copy_done().await.expect("CopyDone");
        assert!(
            conn.write_copy_data(b"x").is_err(),
            "no writes after CopyDone"
        );
        while conn.read_copy_data().await.expect("drain").is_some() {}
        // The walsender ends its copy with `COPY 0`, then completes `START_REPLICATION`.
        let mut tags = Vec::new();
        loop {
            match conn
                .next_response()
                .await
                .expect("end of START_REPLICATION")
            {
                Response::ResultSet(set) => tags.push(set.command_tag().to_owned()),
                Response::Ready => break,
                other => panic!("PG {v}: {other:?}"),
            }
        }
        assert_eq!(
            tags.last().map(String::as_str),
            Some("START_REPLICATION"),
            "PG {v}: {tags:?}"
        );
        conn.simple_query(&format!("DROP_REPLICATION_SLOT {slot}"))
            .await
            .expect("drop slot");
        let err = conn
            .simple_query(&format!("DROP_REPLICATION_SLOT {slot}"))
            .await
            .expect_err("gone");
        assert_eq!(err.code(), Some(SqlState::UNDEFINED_OBJECT), "PG {v}");
        conn.close().await.expect("close");
    }
}

#[tokio::test]
async fn cancel_running_query_then_reuse_and_misuse() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("cancel").await;
        let mut conn = session(server, &db, None).await;
        let pid = backend_pid(&mut conn).await;
        let admin = server.admin(&db).await;
        let token = conn.cancel_token().expect("BackendKeyData received");
        let canceller = async {
            wait_until_sleeping(&admin, pid).await;
            token.cancel().await
        };
        let (result, cancelled) = tokio::join!(conn.simple_query("SELECT pg_sleep(30)"), canceller);
        cancelled.expect("cancel sent");
        let err = result.expect_err("cancelled");
        assert_eq!(
            err.code(),
            Some(SqlState::QUERY_CANCELED),
            "PG {v}: {}",
            chain(&err)
        );
        let sets = conn
            .simple_query("SELECT 2 AS two")
            .await
            .expect("usable after cancel");
        assert_eq!(sets[0].get_str(0, "two").expect("two"), Some("2"));

        assert!(matches!(
            conn.read_copy_data().await,
            Err(TransportError::InvalidState(_))
        ));
        assert!(matches!(
            conn.next_response().await,
            Err(TransportError::InvalidState(_))
        ));
        assert!(matches!(
            conn.write_copy_data(b"x"),
            Err(TransportError::InvalidState(_))
        ));
        conn.close().await.expect("graceful close");
    }
}

#[tokio::test]
async fn base_backup_result_sets_and_copy_out_streams() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("basebackup").await;
        let mut conn = session(server, &db, Some("true")).await;
        let label = unique_name("it");
        let sql = if v >= 15 {
            format!("BASE_BACKUP (LABEL '{label}', CHECKPOINT 'fast', WAIT false, MANIFEST 'no')")
        } else {
            format!("BASE_BACKUP LABEL '{label}' FAST NOWAIT")
        };
        conn.send_query(&sql).await.expect("send BASE_BACKUP");
        let (mut result_sets, mut copy_streams, mut bytes) = (Vec::new(), 0, 0usize);
        loop {
            match conn
                .next_response()
                .await
                .unwrap_or_else(|e| panic!("PG {v}: {}", chain(&e)))
            {
                Response::ResultSet(set) => result_sets.push(set),
                Response::CopyOut => {
                    copy_streams += 1;
                    while let Some(data) = conn.read_copy_data().await.expect("backup data") {
                        bytes += data.len();
                    }
                }
                Response::Ready => break,
                other => panic!("PG {v}: unexpected {other:?} from BASE_BACKUP"),
            }
        }
        // Start position, (tablespaces,) end position; one stream per tablespace before 15,
        // one multiplexed stream from 15 on.
        assert!(result_sets.len() >= 2, "PG {v}: {result_sets:?}");
        assert!(
            result_sets[0]
                .get_str(0, "recptr")
                .expect("start LSN")
                .is_some_and(|lsn| lsn.contains('/')),
            "PG {v}"
        );
        assert!(copy_streams >= 1, "PG {v}");
        assert!(bytes > 1_000_000, "PG {v}: only {bytes} bytes of backup");
        conn.close().await.expect("close");
    }
}

#[tokio::test]
async fn physical_copy_both_round_trip() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("physical").await;
        let admin = server.admin(&db).await;
        admin
            .batch_execute("CREATE TABLE w(x int)")
            .await
            .expect("setup");
        let mut conn = session(server, &db, Some("true")).await;
        let ident = conn
            .simple_query("IDENTIFY_SYSTEM")
            .await
            .expect("IDENTIFY_SYSTEM");
        let timeline = ident[0]
            .get_str(0, "timeline")
            .expect("timeline")
            .expect("not null")
            .to_owned();
        let xlogpos = ident[0]
            .get_str(0, "xlogpos")
            .expect("xlogpos")
            .expect("not null")
            .to_owned();
        conn.copy_both(&format!(
            "START_REPLICATION PHYSICAL {xlogpos} TIMELINE {timeline}"
        ))
        .await
        .unwrap_or_else(|e| panic!("PG {v}: {}", chain(&e)));
        admin
            .batch_execute("INSERT INTO w SELECT generate_series(1, 1000)")
            .await
            .expect("WAL");
        let mut wal_bytes = 0;
        while wal_bytes == 0 {
            // The INSERT above was committed after the stream started: its WAL is sent.
            let frame = conn
                .read_copy_data()
                .await
                .expect("read")
                .expect("stream open");
            if frame.first() == Some(&b'w') {
                wal_bytes += frame.len() - 25;
            }
        }
        conn.send_copy_done().await.expect("CopyDone");
        while conn.read_copy_data().await.expect("drain").is_some() {}
        let mut tags = Vec::new();
        loop {
            match conn
                .next_response()
                .await
                .unwrap_or_else(|e| panic!("PG {v}: {}", chain(&e)))
            {
                Response::ResultSet(set) => tags.push(set.command_tag().to_owned()),
                Response::Ready => break,
                other => panic!("PG {v}: {other:?}"),
            }
        }
        assert!(wal_bytes > 0, "PG {v}");
        assert!(
            !tags.is_empty(),
            "PG {v}: the command completes after CopyDone"
        );
        // The session is reusable after the stream.
        let again = conn.simple_query("IDENTIFY_SYSTEM").await.expect("reuse");
        assert_eq!(
            again[0].get_str(0, "timeline").expect("timeline"),
            Some(timeline.as_str())
        );
        conn.close().await.expect("close");
    }
}

#[tokio::test]
async fn terminated_backend_reports_admin_shutdown() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("terminate").await;
        let admin = server.admin(&db).await;
        // A logical walsender runs SQL too, so both kinds of session are killed mid-query.
        for replication in [None, Some("database")] {
            let cell = format!("PG {v}: replication={replication:?}");
            let mut conn = session(server, &db, replication).await;
            let pid = backend_pid(&mut conn).await;
            let killer = async {
                wait_until_sleeping(&admin, pid).await;
                admin
                    .batch_execute(&format!("SELECT pg_terminate_backend({pid})"))
                    .await
                    .expect("terminate");
            };
            let (result, ()) = tokio::join!(conn.simple_query("SELECT pg_sleep(30)"), killer);
            let err = result.expect_err(&cell);
            assert_eq!(
                err.code(),
                Some(SqlState::ADMIN_SHUTDOWN),
                "{cell}: {}",
                chain(&err)
            );
            assert!(err.is_transient(), "{cell}: {err:?}");
            let again = conn
                .simple_query("SELECT 1")
                .await
                .expect_err("session is over");
            assert!(
                matches!(again, TransportError::InvalidState(_)),
                "{cell}: {again:?}"
            );
        }
    }
}

/// Issue 12 item 12: notices nobody takes must not pile up without bound. Both backends keep
/// the newest `MAX_KEPT_NOTICES` (256).
#[tokio::test]
async fn unread_notices_are_bounded() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("notices").await;
        let mut conn = session(server, &db, None).await;
        conn.simple_query(
            "SET client_min_messages = notice; \
             DO $$ BEGIN FOR i IN 1..1000 LOOP RAISE NOTICE 'n %', i; END LOOP; END $$",
        )
        .await
        .expect("DO");
        let notices = conn.take_notices();
        assert_eq!(notices.len(), 256, "PG {v}");
        assert_eq!(
            notices[0].message, "n 745",
            "PG {v}: the oldest are dropped"
        );
        assert_eq!(notices[255].message, "n 1000", "PG {v}");
        assert!(conn.take_notices().is_empty(), "PG {v}");
        conn.close().await.expect("close");
    }
}

/// Rows `first..first + count` of the CopyIn tests' table, in COPY's text format.
fn copy_rows(first: i64, count: i64) -> String {
    let mut rows = String::new();
    for n in first..first + count {
        let width = usize::try_from(n % 50).expect("small");
        writeln!(rows, "{n}\t{}", "y".repeat(width)).expect("write to String");
    }
    rows
}

#[tokio::test]
async fn copy_in_stream() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("copyin").await;
        let mut conn = session(server, &db, None).await;
        conn.simple_query("CREATE TEMP TABLE t (i int8, s text)")
            .await
            .expect("create");
        assert!(
            matches!(
                conn.write_copy_data(b"1\tx\n"),
                Err(TransportError::InvalidState(_))
            ),
            "PG {v}: CopyData outside COPY"
        );
        conn.send_query("COPY t FROM STDIN").await.expect("send");
        assert_eq!(
            conn.next_response().await.expect("copy in"),
            Response::CopyIn,
            "PG {v}"
        );
        assert!(
            matches!(
                conn.next_response().await,
                Err(TransportError::InvalidState(_))
            ),
            "PG {v}: the result before CopyDone"
        );
        for chunk in 0..50 {
            conn.write_copy_data(copy_rows(chunk * 100, 100).as_bytes())
                .expect("queue");
            if chunk % 10 == 9 {
                conn.flush().await.expect("flush");
            }
        }
        conn.send_copy_done().await.expect("copy done");
        assert!(
            matches!(
                conn.send_copy_done().await,
                Err(TransportError::InvalidState(_))
            ),
            "PG {v}: a second CopyDone"
        );
        let Response::ResultSet(done) = conn.next_response().await.expect("tag") else {
            panic!("PG {v}")
        };
        assert_eq!(done.command_tag(), "COPY 5000", "PG {v}");
        assert_eq!(conn.next_response().await.expect("ready"), Response::Ready);
        let sets = conn
            .simple_query("SELECT count(*) AS n, sum(i) AS s, sum(length(s)) AS l FROM t")
            .await
            .expect("count");
        let value = |column| sets[0].get_str(0, column).expect(column).map(str::to_owned);
        assert_eq!(value("n").as_deref(), Some("5000"), "PG {v}");
        assert_eq!(value("s").as_deref(), Some("12497500"), "PG {v}");
        assert_eq!(value("l").as_deref(), Some("122500"), "PG {v}");

        // A bad first row: the server fails the COPY while we keep writing (about 2 MB); the
        // error comes from next_response on both backends and the session stays usable.
        conn.send_query("COPY t FROM STDIN").await.expect("send");
        assert_eq!(
            conn.next_response().await.expect("copy in"),
            Response::CopyIn
        );
        conn.write_copy_data(b"not a number\tx\n").expect("queue");
        for chunk in 0..200 {
            conn.write_copy_data(copy_rows(chunk * 200, 200).as_bytes())
                .expect("queue after the error");
            conn.flush().await.expect("flush after the error");
        }
        conn.send_copy_done()
            .await
            .expect("copy done after the error");
        let error = conn.next_response().await.expect_err("bad row");
        assert_eq!(
            error.code(),
            Some(SqlState::INVALID_TEXT_REPRESENTATION),
            "PG {v}: {}",
            chain(&error)
        );
        let sets = conn
            .simple_query("SELECT count(*) AS n FROM t")
            .await
            .expect("usable after the failed COPY");
        assert_eq!(sets[0].get_str(0, "n").expect("n"), Some("5000"), "PG {v}");
        conn.close().await.expect("close");
    }
}
