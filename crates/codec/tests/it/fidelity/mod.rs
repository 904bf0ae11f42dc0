//! Fidelity against real servers: every message PostgreSQL 14–18 sends through pgoutput,
//! under every option the version has, decodes, re-encodes byte-identically and replays to
//! exactly the data the workload left in the tables.

mod headers;
mod model;
mod workload;

use std::fmt;

use bytes::Bytes;
use pg_walstream_codec::pgoutput::{
    PgOutputDecoder, ProtocolVersion, ReplicaIdentity, TupleColumns as _,
};
use pg_walstream_testkit::{TestServer, servers};
use tokio_postgres::Client;

use model::Model;
use workload::{Names, ORIGIN_LSN, TABLES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streaming {
    Off,
    On,
    Parallel,
}

/// One combination of pgoutput options.
#[derive(Debug, Clone, Copy)]
struct Config {
    proto: u32,
    binary: bool,
    streaming: Streaming,
    two_phase: bool,
    messages: bool,
    /// `Some("none")` / `Some("any")` on 16+, `None` = option not given.
    origin: Option<&'static str>,
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "proto {} binary {} streaming {:?} two_phase {} messages {} origin {:?}",
            self.proto, self.binary, self.streaming, self.two_phase, self.messages, self.origin
        )
    }
}

fn max_proto(version: u32) -> u32 {
    match version {
        14 => 2,
        15 => 3,
        _ => 4,
    }
}

fn best_streaming(proto: u32) -> Streaming {
    match proto {
        1 => Streaming::Off,
        2 | 3 => Streaming::On,
        _ => Streaming::Parallel,
    }
}

/// The option combinations worth testing on a server version: every protocol version in
/// text and binary with its strongest streaming mode, streaming off and plain `on`, every
/// two-phase capable version, `messages` off, and both `origin` values.
fn configs(version: u32) -> Vec<Config> {
    let base = Config {
        proto: 1,
        binary: false,
        streaming: Streaming::Off,
        two_phase: false,
        messages: true,
        origin: None,
    };
    let max = max_proto(version);
    let mut out = Vec::new();
    for proto in 1..=max {
        for binary in [false, true] {
            out.push(Config {
                proto,
                binary,
                streaming: best_streaming(proto),
                ..base
            });
        }
        if proto >= 2 {
            out.push(Config {
                proto,
                streaming: Streaming::Off,
                ..base
            });
        }
        if proto >= 4 {
            out.push(Config {
                proto,
                streaming: Streaming::On,
                ..base
            });
        }
        if proto >= 3 {
            out.push(Config {
                proto,
                two_phase: true,
                streaming: best_streaming(proto),
                ..base
            });
            out.push(Config {
                proto,
                two_phase: true,
                binary: true,
                streaming: Streaming::Off,
                ..base
            });
        }
    }
    out.push(Config {
        proto: max,
        messages: false,
        streaming: best_streaming(max),
        ..base
    });
    if version >= 16 {
        out.push(Config {
            proto: max,
            origin: Some("none"),
            streaming: Streaming::On,
            ..base
        });
        out.push(Config {
            proto: max,
            origin: Some("any"),
            binary: true,
            ..base
        });
    }
    out
}

/// The raw pgoutput messages of a slot under `config` with the xid the server reports for
/// each, without consuming them.
async fn peek(admin: &Client, slot: &str, config: &Config) -> Vec<(u32, Bytes)> {
    let mut options = vec![
        ("proto_version", config.proto.to_string()),
        ("publication_names", "pub".to_string()),
        ("binary", config.binary.to_string()),
        ("messages", config.messages.to_string()),
    ];
    match config.streaming {
        Streaming::Off => {}
        Streaming::On => options.push(("streaming", "on".into())),
        Streaming::Parallel => options.push(("streaming", "parallel".into())),
    }
    if config.two_phase {
        options.push(("two_phase", "on".into()));
    }
    if let Some(origin) = config.origin {
        options.push(("origin", origin.into()));
    }
    let args: Vec<String> = options
        .iter()
        .map(|(k, v)| format!("'{k}', '{v}'"))
        .collect();
    let sql = format!(
        "SELECT xid::text, data FROM pg_logical_slot_peek_binary_changes('{slot}', NULL, NULL, {})",
        args.join(", ")
    );
    admin
        .query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| {
            let xid = row.get::<_, &str>(0).parse().expect("numeric xid");
            (xid, Bytes::from(row.get::<_, Vec<u8>>(1)))
        })
        .collect()
}

/// Decodes, re-encodes and replays one configuration's stream, then checks it.
fn check(
    version: u32,
    config: &Config,
    raw: &[(u32, Bytes)],
    window: (std::time::SystemTime, std::time::SystemTime),
    expected: &std::collections::BTreeMap<String, workload::Rows>,
    names: &Names,
) {
    let ctx = format!("PostgreSQL {version}, {config}");
    let proto = ProtocolVersion::try_from(config.proto).unwrap();
    let mut decoder = PgOutputDecoder::new(proto);
    let mut model = Model::default();
    let mut headers = headers::Headers::new(window);
    for (i, (server_xid, bytes)) in raw.iter().enumerate() {
        let msg = decoder
            .decode(bytes)
            .unwrap_or_else(|e| panic!("{ctx}: message {i} ({bytes:02x?}) does not decode: {e}"));
        let mut again = Vec::new();
        msg.encode(&mut again).unwrap();
        assert_eq!(
            &again[..],
            &bytes[..],
            "{ctx}: message {i} re-encodes differently"
        );
        headers
            .check(&msg, *server_xid)
            .unwrap_or_else(|e| panic!("{ctx}: message {i}: {e}"));
        // Borrowed tuples iterate exactly their declared columns.
        if let pg_walstream_codec::pgoutput::Message::Insert(ins) = &msg {
            assert_eq!(ins.new.column_iter().count(), ins.new.len(), "{ctx}");
        }
        let owned = msg.into_owned(bytes);
        let mut again = Vec::new();
        owned.encode(&mut again).unwrap();
        assert_eq!(
            &again[..],
            &bytes[..],
            "{ctx}: owned message {i} re-encodes differently"
        );
        model
            .apply(owned)
            .unwrap_or_else(|e| panic!("{ctx}: message {i}: {e}"));
    }
    model
        .check_finished()
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert!(!decoder.in_stream(), "{ctx}: stream left open");

    // Table contents equal what SQL reads back (minus the origin row under origin=none).
    let mut expected = expected.clone();
    if config.origin == Some("none") {
        expected.insert("t_origin".into(), workload::Rows::new());
    }
    let replayed = model.tables(TABLES);
    for (table, rows) in &expected {
        let got = &replayed[table];
        assert_eq!(got.len(), rows.len(), "{ctx}: {table} row count");
        assert_eq!(got, rows, "{ctx}: {table} contents");
    }

    // Logical messages: exactly the committed ones, with their flags.
    let mut want = if config.messages {
        workload::expected_messages()
    } else {
        Vec::new()
    };
    let mut got = model.messages.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{ctx}: logical messages");

    let seen = &model.seen;
    let count = |t: u8| seen.tags.get(&t).copied().unwrap_or(0);
    // Schema messages.
    let mood: Vec<_> = seen
        .types
        .iter()
        .filter(|(_, ns, n)| ns == "public" && n == "mood")
        .collect();
    assert!(!mood.is_empty(), "{ctx}: Type message for the enum");
    let history = &seen.relation_columns["t_default"];
    let names_of = |s: &Vec<(String, pg_walstream_codec::Oid)>| {
        s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names_of(&history[0]), ["id", "v", "big", "m"], "{ctx}");
    assert_eq!(
        names_of(history.last().unwrap()),
        ["id", "v", "big", "m", "extra"],
        "{ctx}: ALTER TABLE"
    );
    let type_oids: Vec<u32> = history.last().unwrap().iter().map(|(_, o)| o.0).collect();
    assert_eq!(
        [type_oids[0], type_oids[1], type_oids[2], type_oids[4]],
        [23, 25, 25, 20],
        "{ctx}"
    );
    assert_eq!(
        type_oids[3], mood[0].0.0,
        "{ctx}: enum column type is the announced Type"
    );
    assert_eq!(seen.key_flags["t_default"], ["id"], "{ctx}: key columns");
    assert_eq!(
        seen.replica_identities["t_default"],
        ReplicaIdentity::Default,
        "{ctx}"
    );
    assert_eq!(
        seen.replica_identities["t_full"],
        ReplicaIdentity::Full,
        "{ctx}"
    );
    // DML details.
    assert!(
        seen.unchanged_toast_columns >= 2,
        "{ctx}: unchanged TOAST columns"
    );
    assert!(
        seen.full_old_tuples >= 1,
        "{ctx}: REPLICA IDENTITY FULL old tuples"
    );
    assert!(
        seen.key_old_tuples >= 2,
        "{ctx}: old keys (key change, delete)"
    );
    assert_eq!(
        seen.truncate_flags,
        [2],
        "{ctx}: TRUNCATE ... RESTART IDENTITY"
    );
    // Origin.
    // The origin transaction carries the origin's commit time, and only it does.
    assert_eq!(
        headers.origin_stamped,
        seen.origins.len(),
        "{ctx}: origin commit time"
    );
    if config.origin == Some("none") {
        assert!(
            seen.origins.is_empty(),
            "{ctx}: origin=none sends no Origin"
        );
    } else {
        assert_eq!(
            seen.origins,
            [(names.origin.clone(), ORIGIN_LSN)],
            "{ctx}: Origin message"
        );
    }
    // Streaming.
    if config.streaming == Streaming::Off {
        assert_eq!(
            count(b'S') + count(b'E') + count(b'c') + count(b'A'),
            0,
            "{ctx}: no streaming"
        );
    } else {
        assert!(
            count(b'S') >= 2 && count(b'S') == count(b'E'),
            "{ctx}: stream blocks"
        );
        assert!(count(b'c') >= 1, "{ctx}: streamed commit");
        // PostgreSQL 18 skips decoding transactions already known to be aborted when they
        // hit the memory limit, and we decode after the workload finished: no Stream Abort.
        if version < 18 {
            assert!(
                seen.toplevel_aborts >= 1,
                "{ctx}: rolled-back streamed transaction"
            );
        }
        assert!(
            seen.subxact_aborts >= 1,
            "{ctx}: rolled-back savepoint in a streamed transaction"
        );
        let aborts = seen.toplevel_aborts + seen.subxact_aborts;
        let with_info = if config.streaming == Streaming::Parallel {
            aborts
        } else {
            0
        };
        assert_eq!(
            seen.aborts_with_info, with_info,
            "{ctx}: Stream Abort LSN/time"
        );
    }
    // Two-phase.
    let two_phase_tags = count(b'b') + count(b'P') + count(b'K') + count(b'r') + count(b'p');
    if config.two_phase {
        let has = |t: u8, gid: &str| seen.gids.iter().any(|(tt, g)| *tt == t && g == gid);
        assert!(
            has(b'b', &names.gid_commit) && has(b'P', &names.gid_commit),
            "{ctx}: prepared"
        );
        assert!(
            has(b'K', &names.gid_commit) && has(b'K', &names.gid_big),
            "{ctx}: commit prepared"
        );
        assert!(has(b'r', &names.gid_rollback), "{ctx}: rollback prepared");
        let big_prepare = if config.streaming == Streaming::Off {
            b'P'
        } else {
            b'p'
        };
        assert!(
            has(big_prepare, &names.gid_big),
            "{ctx}: prepare of the big transaction"
        );
    } else {
        assert_eq!(two_phase_tags, 0, "{ctx}: no two-phase messages");
    }
}

async fn fidelity_on(server: &TestServer) {
    let version = server.version();
    let db = server.create_database("codec_fidelity").await;
    let admin = server.admin(&db).await;
    let origin_session = server.admin(&db).await;
    let names = Names::new();
    workload::setup(&admin, &names).await;
    admin
        .batch_execute(&format!(
            "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
            names.slot
        ))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL {version}: create slot: {e}"));
    if version >= 15 {
        admin
            .batch_execute(&format!(
                "SELECT pg_create_logical_replication_slot('{}', 'pgoutput', false, true)",
                names.two_phase_slot
            ))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL {version}: create two-phase slot: {e}"));
    }
    let start = std::time::SystemTime::now();
    workload::run(&admin, &origin_session, &names).await;
    let slack = std::time::Duration::from_secs(5);
    let window = (start - slack, std::time::SystemTime::now() + slack);
    let expected = workload::snapshot(&admin).await;
    assert_eq!(
        expected["t_default"].len(),
        1000 + 100 + 5 + 1000,
        "PostgreSQL {version}: workload"
    );

    for config in configs(version) {
        let slot = if config.two_phase {
            &names.two_phase_slot
        } else {
            &names.slot
        };
        let raw = peek(&admin, slot, &config).await;
        check(version, &config, &raw, window, &expected, &names);
    }

    let mut cleanup = vec![format!("SELECT pg_drop_replication_slot('{}')", names.slot)];
    if version >= 15 {
        cleanup.push(format!(
            "SELECT pg_drop_replication_slot('{}')",
            names.two_phase_slot
        ));
    }
    cleanup.push(format!(
        "SELECT pg_replication_origin_drop('{}')",
        names.origin
    ));
    let cleanup = cleanup.join("; ");
    admin.batch_execute(&cleanup).await.expect("cleanup");
}

#[tokio::test(flavor = "current_thread")]
async fn pgoutput_fidelity_against_every_server() {
    let servers = servers();
    assert!(!servers.is_empty(), "no test servers");
    for server in servers {
        fidelity_on(server).await;
    }
}
