//! Per-frame cost of the transport's read path.
//!
//! - `parse`: splitting CopyData frames off one buffer (the sans-IO parser alone);
//! - `native_read_copy_data_per_frame`: the whole native read path (socket reads into the large
//!   buffer, parsing, `read_copy_data` through the `Connection` enum) against a local fake
//!   server that completes a trust startup and then streams XLogData-sized CopyData frames;
//! - `libpq_read_copy_data_per_frame` (feature `libpq`): the same stream through the libpq
//!   backend (`PQconsumeInput` + `PQgetCopyData`, buffer handed out in a `Bytes`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pg_walstream_transport::conninfo::Config;
use pg_walstream_transport::message::backend::{BackendMessage, DEFAULT_MAX_FRAME_LEN, parse};
use pg_walstream_transport::{Backend, Connection, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A CopyData payload shaped like XLogData: 25-byte header + 100 bytes of WAL.
const PAYLOAD: usize = 125;

fn frames(count: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(count * (PAYLOAD + 5));
    for i in 0..count {
        buf.put_u8(b'd');
        buf.put_u32((PAYLOAD + 4) as u32);
        buf.put_u8(b'w');
        buf.put_bytes((i % 251) as u8, PAYLOAD - 1);
    }
    buf
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Serves one session: trust startup, then for the query `STREAM <n>` a CopyBoth response
/// followed by `n` CopyData frames, CopyDone, CommandComplete and ReadyForQuery.
async fn fake_server(listener: TcpListener) {
    while let Ok((mut socket, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut len = [0u8; 4];
            if socket.read_exact(&mut len).await.is_err() {
                return;
            }
            let mut startup = vec![0u8; u32::from_be_bytes(len) as usize - 4];
            if socket.read_exact(&mut startup).await.is_err() {
                return;
            }
            let mut hello = message(b'R', &0i32.to_be_bytes());
            hello.extend(message(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]));
            hello.extend(message(b'Z', b"I"));
            if socket.write_all(&hello).await.is_err() {
                return;
            }
            loop {
                let mut header = [0u8; 5];
                if socket.read_exact(&mut header).await.is_err() {
                    return;
                }
                let mut body = vec![
                    0u8;
                    u32::from_be_bytes([header[1], header[2], header[3], header[4]])
                        as usize
                        - 4
                ];
                if socket.read_exact(&mut body).await.is_err() {
                    return;
                }
                match header[0] {
                    b'Q' => {
                        let text = String::from_utf8_lossy(&body[..body.len() - 1]).into_owned();
                        let n: usize = text.trim_start_matches("STREAM ").parse().unwrap_or(0);
                        let mut out = message(b'W', &[0, 0, 0]);
                        out.extend_from_slice(&frames(n));
                        out.extend(message(b'c', b""));
                        if socket.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                    b'c' => {
                        let mut out = message(b'C', b"START_REPLICATION\0");
                        out.extend(message(b'Z', b"I"));
                        if socket.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        });
    }
}

fn bench_parse(c: &mut Criterion) {
    const COUNT: usize = 10_000;
    let wire = frames(COUNT);
    let mut group = c.benchmark_group("transport");
    group.throughput(Throughput::Elements(COUNT as u64));
    group.bench_function("parse_copy_data_10k", |b| {
        b.iter_batched(
            || wire.clone(),
            |mut buf| {
                let mut n = 0;
                while let Some(BackendMessage::CopyData(data)) =
                    parse(&mut buf, DEFAULT_MAX_FRAME_LEN).expect("valid")
                {
                    n += black_box(data).len();
                }
                n
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn bench_backends(c: &mut Criterion) {
    // The fake server runs on its own thread so the measured thread only does client work.
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let server = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        server.expect("server runtime").block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("address").port();
            port_tx.send(port).expect("send port");
            fake_server(listener).await;
        });
    });
    let port = port_rx.recv().expect("fake server port");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config: Config =
        format!("host=127.0.0.1 port={port} user=bench dbname=bench sslmode=disable")
            .parse()
            .expect("config");
    let mut group = c.benchmark_group("transport");
    group.throughput(Throughput::Elements(1));
    let mut backends = vec![("native", Backend::Native)];
    if Backend::Libpq.is_available() {
        backends.push(("libpq", Backend::Libpq));
    }
    for (name, backend) in backends {
        group.bench_function(format!("{name}_read_copy_data_per_frame"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut conn = Connection::connect_with(&config, backend)
                        .await
                        .expect("connect");
                    conn.copy_both(&format!("STREAM {iters}"))
                        .await
                        .expect("copy both");
                    let start = Instant::now();
                    let mut n = 0u64;
                    while let Some(frame) = conn.read_copy_data().await.expect("read") {
                        black_box(&frame);
                        n += 1;
                    }
                    let elapsed = start.elapsed();
                    assert_eq!(n, iters);
                    conn.send_copy_done().await.expect("copy done");
                    while conn.next_response().await.expect("end")
                        != pg_walstream_transport::Response::Ready
                    {}
                    conn.close().await.expect("close");
                    elapsed
                })
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_parse, bench_backends
}
criterion_main!(benches);
