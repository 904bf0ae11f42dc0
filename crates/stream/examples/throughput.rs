//! Side-by-side consumption of the same WAL by `pg_recvlogical` (raw bytes to /dev/null) and
//! by this crate's stream (decoding every event and reading every column), on a throwaway
//! server.
//!
//! `cargo run --release -p pg-walstream-stream --example throughput -- [rows] [version]`

// Counts and tick totals far below 2^52 become f64 exactly.
#![allow(clippy::cast_precision_loss)]

use std::process::Command;
use std::time::Instant;

use pg_walstream_stream::{EventKind, LogicalConfig, LogicalStream};
use pg_walstream_testkit::{AuthUser, TestServer, client_tool};

/// User + system CPU seconds of this process so far, from /proc/self/stat (clock ticks of
/// 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = stat.rsplit_once(')').expect("stat format").1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map_or(1_000_000, |a| a.parse().expect("rows"));
    let version: u32 = args.next().map_or(15, |a| a.parse().expect("version"));
    let server = TestServer::start(version).expect("server");
    let db = server.create_database("throughput").await;
    let admin = server.admin(&db).await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric, note text);
             CREATE PUBLICATION pub FOR TABLE t;",
        )
        .await
        .unwrap();
    for slot in ["ours", "recv"] {
        admin
            .batch_execute(&format!(
                "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
            ))
            .await
            .unwrap();
    }
    let batch = 100_000.min(rows);
    let mut done = 0;
    while done < rows {
        admin
            .batch_execute(&format!(
                "INSERT INTO t SELECT g, 'customer ' || g, g * 1.5, NULL FROM generate_series({}, {}) g",
                done + 1,
                done + batch
            ))
            .await
            .unwrap();
        done += batch;
    }
    let end: String = admin
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let conninfo = format!("{} sslmode=disable", server.conninfo(AuthUser::Scram, &db));

    let recvlogical = client_tool("pg_recvlogical", version).expect("pg_recvlogical");
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%U %S"])
        .arg(&recvlogical)
        .args([
            "-d",
            &conninfo,
            "--slot",
            "recv",
            "--start",
            "--no-loop",
            "-f",
            "/dev/null",
        ])
        .args(["-o", "proto_version=1", "-o", "publication_names=pub"])
        .arg(format!("--endpos={end}"))
        .output()
        .expect("run pg_recvlogical");
    let recv_wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let cpu_line = stderr.lines().last().unwrap_or_default();
    let recv_cpu: f64 = cpu_line
        .split_whitespace()
        .filter_map(|s| s.parse::<f64>().ok())
        .sum();

    let config = LogicalConfig::builder()
        .conninfo(&conninfo)
        .slot("ours")
        .publication("pub")
        .stop_at(end.parse().unwrap())
        .build()
        .unwrap();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut stream = LogicalStream::connect(config).await.unwrap();
    let (mut events, mut inserts, mut bytes) = (0u64, 0u64, 0usize);
    while let Some(event) = stream.next_event().await {
        let event = event.unwrap();
        events += 1;
        match event.kind() {
            EventKind::Insert(change) => {
                inserts += 1;
                for column in change.new_tuple().unwrap().columns() {
                    bytes += column.value().map_or(0, <[u8]>::len);
                }
            }
            EventKind::Commit(c) => stream.feedback().processed(c.end_lsn),
            _ => {}
        }
    }
    let ours_wall = started.elapsed();
    let ours_cpu = cpu_seconds() - cpu_before;
    assert_eq!(inserts, rows, "every row arrived");
    let per_million = |cpu: f64| cpu / rows as f64 * 1e6;
    println!("PostgreSQL {version}, {rows} inserted rows ({events} events, {bytes} value bytes)");
    println!(
        "pg_recvlogical: {:>7.3} s wall, {:>6.2} CPU s ({:.2} CPU s per million rows), exit {}",
        recv_wall.as_secs_f64(),
        recv_cpu,
        per_million(recv_cpu),
        output.status
    );
    println!(
        "pg-walstream:   {:>7.3} s wall, {:>6.2} CPU s ({:.2} CPU s per million rows)",
        ours_wall.as_secs_f64(),
        ours_cpu,
        per_million(ours_cpu)
    );
    println!(
        "throughput ratio (pg_recvlogical wall / ours): {:.2}",
        recv_wall.as_secs_f64() / ours_wall.as_secs_f64().max(1e-3)
    );
}
