//! The driver against a scripted in-memory transport: backpressure with status updates while
//! the application is not polling, graceful stop, errors in order.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pg_walstream_codec::pgoutput::{
    Begin, Commit, Insert, OwnedColumn, OwnedMessage, OwnedTupleData, ProtocolVersion, Relation,
    RelationColumn, ReplicaIdentity,
};
use pg_walstream_codec::replication::{FrontendMessage, StandbyStatusUpdate, XLogData};
use pg_walstream_codec::{Lsn, Oid, PgTimestamp, Xid};
use pg_walstream_slot::{ServerVersion, SystemIdentity};
use pg_walstream_transport::{
    CancelToken, DbError, Response, ResultSet, Transport, TransportError,
};
use tokio::sync::mpsc;

use crate::core::{CoreOptions, LogicalCore, ReadTimeout};
use crate::error::Error;
use crate::events::EventKind;
use crate::feedback::Feedback;
use crate::stream::{ChannelLimits, LogicalStream, StreamInfo};

/// What the scripted server sends next.
enum Script {
    Frame(Bytes),
    Fail,
}

#[derive(Default)]
struct Observed {
    /// CopyData written and flushed by the client, in order; `None` marks CopyDone.
    written: Mutex<Vec<Option<Vec<u8>>>>,
    frames_read: AtomicUsize,
    failures_read: AtomicUsize,
    copy_done: AtomicBool,
}

impl Observed {
    fn status_updates(&self) -> Vec<StandbyStatusUpdate> {
        self.written
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|w| match FrontendMessage::parse(w).unwrap() {
                FrontendMessage::StandbyStatusUpdate(u) => u,
                FrontendMessage::HotStandbyFeedback(_) => panic!("unexpected feedback"),
            })
            .collect()
    }
}

struct MockTransport {
    script: mpsc::UnboundedReceiver<Script>,
    queued: Vec<Vec<u8>>,
    observed: Arc<Observed>,
}

fn not_in_mock() -> TransportError {
    TransportError::InvalidState("not scripted")
}

impl Transport for MockTransport {
    async fn send_query(&mut self, _sql: &str) -> pg_walstream_transport::Result<()> {
        Err(not_in_mock())
    }
    async fn next_response(&mut self) -> pg_walstream_transport::Result<Response> {
        Err(not_in_mock())
    }
    async fn simple_query(&mut self, _sql: &str) -> pg_walstream_transport::Result<Vec<ResultSet>> {
        Err(not_in_mock())
    }
    async fn copy_both(&mut self, _sql: &str) -> pg_walstream_transport::Result<()> {
        Ok(())
    }
    async fn read_copy_data(&mut self) -> pg_walstream_transport::Result<Option<Bytes>> {
        if self.observed.copy_done.load(Ordering::Acquire) {
            return Ok(None);
        }
        match self.script.recv().await {
            Some(Script::Frame(frame)) => {
                self.observed.frames_read.fetch_add(1, Ordering::AcqRel);
                Ok(Some(frame))
            }
            Some(Script::Fail) => {
                self.observed.failures_read.fetch_add(1, Ordering::AcqRel);
                Err(TransportError::Closed)
            }
            // The script is over: behave like a live but idle server.
            None => std::future::pending().await,
        }
    }
    fn try_read_copy_data(&mut self) -> pg_walstream_transport::Result<Option<Bytes>> {
        if self.observed.copy_done.load(Ordering::Acquire) {
            return Ok(None);
        }
        match self.script.try_recv() {
            Ok(Script::Frame(frame)) => {
                self.observed.frames_read.fetch_add(1, Ordering::AcqRel);
                Ok(Some(frame))
            }
            Ok(Script::Fail) => {
                self.observed.failures_read.fetch_add(1, Ordering::AcqRel);
                Err(TransportError::Closed)
            }
            Err(_) => Ok(None),
        }
    }
    fn write_copy_data(&mut self, data: &[u8]) -> pg_walstream_transport::Result<()> {
        self.queued.push(data.to_vec());
        Ok(())
    }
    async fn flush(&mut self) -> pg_walstream_transport::Result<()> {
        let mut written = self.observed.written.lock().unwrap();
        written.extend(self.queued.drain(..).map(Some));
        Ok(())
    }
    async fn send_copy_done(&mut self) -> pg_walstream_transport::Result<()> {
        self.observed.written.lock().unwrap().push(None);
        self.observed.copy_done.store(true, Ordering::Release);
        Ok(())
    }
    fn cancel_token(&self) -> Option<CancelToken> {
        None
    }
    fn parameter(&self, _name: &str) -> Option<&str> {
        None
    }
    fn take_notices(&mut self) -> Vec<DbError> {
        Vec::new()
    }
    fn is_tls(&self) -> bool {
        false
    }
    async fn close(self) -> pg_walstream_transport::Result<()> {
        Ok(())
    }
}

fn frame(lsn: u64, message: &OwnedMessage) -> Script {
    let mut data = Vec::new();
    message.encode(&mut data).unwrap();
    let mut out = Vec::new();
    XLogData {
        wal_start: Lsn(lsn),
        wal_end: Lsn(lsn),
        send_time: PgTimestamp(0),
        data: data.into(),
    }
    .encode(&mut out);
    Script::Frame(out.into())
}

/// Begin, Relation, `rows` Inserts, Commit (end LSN = 0x10_0000 + 16 * (rows + 3)).
fn big_transaction(rows: u64) -> (Vec<Script>, Lsn) {
    let base = 0x10_0000;
    let commit = base + 16 * (rows + 2);
    let end = Lsn(commit + 16);
    let mut script = vec![
        frame(
            base,
            &OwnedMessage::Begin(Begin {
                final_lsn: Lsn(commit),
                commit_time: PgTimestamp(1),
                xid: Xid(42),
            }),
        ),
        frame(
            base + 16,
            &OwnedMessage::Relation(Relation {
                xid: None,
                oid: Oid(1),
                namespace: "public".into(),
                name: "t".into(),
                replica_identity: ReplicaIdentity::Default,
                columns: vec![RelationColumn {
                    flags: 1,
                    name: "id".into(),
                    type_oid: Oid(20),
                    type_modifier: -1,
                }],
            }),
        ),
    ];
    for i in 0..rows {
        script.push(frame(
            base + 32 + 16 * i,
            &OwnedMessage::Insert(Insert {
                xid: None,
                relation: Oid(1),
                new: OwnedTupleData {
                    columns: vec![OwnedColumn::Text(Bytes::from(i.to_string()))],
                },
            }),
        ));
    }
    script.push(frame(
        commit,
        &OwnedMessage::Commit(Commit {
            flags: 0,
            commit_lsn: Lsn(commit),
            end_lsn: end,
            commit_time: PgTimestamp(1),
        }),
    ));
    (script, end)
}

fn start(
    capacity: usize,
    status_interval: Duration,
) -> (LogicalStream, mpsc::UnboundedSender<Script>, Arc<Observed>) {
    let mut options = CoreOptions::new(ProtocolVersion::V4);
    options.status_interval = status_interval;
    options.read_timeout = ReadTimeout::Disabled;
    start_with(
        ChannelLimits {
            events: capacity,
            bytes: crate::config::DEFAULT_CHANNEL_BYTES,
            slot: "mock".into(),
        },
        options,
    )
}

#[allow(clippy::needless_pass_by_value)]
fn start_with(
    limits: ChannelLimits,
    options: CoreOptions,
) -> (LogicalStream, mpsc::UnboundedSender<Script>, Arc<Observed>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let observed = Arc::new(Observed::default());
    let transport = MockTransport {
        script: rx,
        queued: Vec::new(),
        observed: Arc::clone(&observed),
    };
    let read_coalescing = options.coalesce;
    let core = LogicalCore::new(options, Feedback::new(), Instant::now());
    let info = StreamInfo {
        system: SystemIdentity {
            system_id: 1,
            timeline: 1,
            xlogpos: Lsn(0),
            dbname: Some("db".into()),
        },
        server: ServerVersion::from_num(170_000),
        proto_version: ProtocolVersion::V4,
        start_lsn: Lsn(0),
        confirmed_flush_lsn: Lsn(0),
        resume_lsn: Lsn(0),
        created_slot: None,
        backend: None,
        read_coalescing,
    };
    let stream = LogicalStream::spawn(transport, core, &limits, info, None);
    (stream, tx, observed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_updates_continue_while_the_application_stalls() {
    let (mut stream, server, observed) = start(4, Duration::from_millis(50));
    let (script, end) = big_transaction(1000);
    let total = script.len();
    for s in script {
        server.send(s).unwrap();
    }
    // The application does not poll: status updates keep going out on their timer (waited
    // for with a generous deadline, never counted against the clock) while backpressure
    // keeps reading to what the channel holds.
    let updates = wait_for(Duration::from_secs(60), || {
        (observed.status_updates().len() >= 5).then_some(())
    })
    .await;
    assert!(updates.is_some(), "status updates stopped while stalled");
    let read_while_stalled = observed.frames_read.load(Ordering::Acquire);
    assert!(
        read_while_stalled <= 4 + 2,
        "backpressure: read {read_while_stalled} frames with a channel of 4"
    );
    // Everything arrives afterwards, in order, nothing acked before the report.
    let mut inserts = 0;
    let mut last = None;
    for _ in 0..total {
        let event = stream.next_event().await.unwrap().unwrap();
        if let EventKind::Insert(change) = event.kind() {
            let value = change.new_tuple().unwrap().columns().next().unwrap();
            assert_eq!(value.value().unwrap(), inserts.to_string().as_bytes());
            inserts += 1;
        }
        last = Some(event);
    }
    assert_eq!(inserts, 1000);
    assert!(observed.status_updates().iter().all(|u| u.flush == Lsn(0)));
    let last = last.unwrap();
    assert_eq!(last.ack_lsn(), Some(end));
    stream.feedback().ack(&last).unwrap();
    // Graceful stop: the final status carries the report, then CopyDone.
    let feedback = stream.feedback().clone();
    stream.stop().await.unwrap();
    let written = observed.written.lock().unwrap().clone();
    assert_eq!(written.last(), Some(&None), "CopyDone last");
    let final_update = observed.status_updates().last().copied().unwrap();
    // The commit's end LSN lies beyond the last frame received: flush is capped there.
    assert_eq!(final_update.flush, Lsn(end.0 - 16));
    assert_eq!(feedback.confirmed_flush_lsn(), final_update.flush);
}

#[tokio::test]
async fn transport_error_arrives_after_earlier_events() {
    let (mut stream, server, _observed) = start(16, Duration::from_secs(10));
    let (script, _) = big_transaction(3);
    for s in script {
        server.send(s).unwrap();
    }
    server.send(Script::Fail).unwrap();
    let mut kinds = Vec::new();
    let error = loop {
        match stream.next_event().await {
            Some(Ok(e)) => kinds.push(e),
            Some(Err(e)) => break e,
            None => panic!("ended without the error"),
        }
    };
    assert_eq!(kinds.len(), 6);
    assert!(matches!(error, Error::Transport(TransportError::Closed)));
    assert!(error.is_transient());
    assert!(stream.next_event().await.is_none());
}

#[tokio::test]
async fn dropping_the_stream_stops_it_gracefully() {
    let (stream, server, observed) = start(16, Duration::from_secs(10));
    let (script, _) = big_transaction(1);
    for s in script {
        server.send(s).unwrap();
    }
    drop(stream);
    let done = wait_for(Duration::from_secs(60), || {
        observed.copy_done.load(Ordering::Acquire).then_some(())
    })
    .await;
    assert!(done.is_some(), "no CopyDone after the drop");
    let written = observed.written.lock().unwrap().clone();
    assert!(
        matches!(written.as_slice(), [.., Some(_), None]),
        "a final status update right before CopyDone: {written:?}"
    );
}

#[tokio::test]
async fn futures_stream_yields_events() {
    use futures::StreamExt as _;
    let (stream, server, _observed) = start(2, Duration::from_secs(10));
    let (script, _) = big_transaction(5);
    for s in script {
        server.send(s).unwrap();
    }
    let handle = tokio::spawn(async move {
        let mut stream = stream;
        let first: Vec<_> = (&mut stream).take(8).collect().await;
        (first, stream)
    });
    let (first, stream) = handle.await.unwrap();
    assert_eq!(first.len(), 8);
    assert!(matches!(
        first[7].as_ref().unwrap().kind(),
        EventKind::Commit(_)
    ));
    stream.stop().await.unwrap();
}

/// Polls `check` every few milliseconds until it yields a value or `limit` passes (a liveness
/// bound far above what the awaited thing needs, not a timing assertion).
async fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn failure_after_the_stop_lsn_reaches_the_application_and_ends_the_task() {
    let (script, end) = big_transaction(2);
    let mut options = CoreOptions::new(ProtocolVersion::V4);
    options.read_timeout = ReadTimeout::Disabled;
    options.stop_at = Some(end);
    let limits = ChannelLimits {
        events: 16,
        bytes: crate::config::DEFAULT_CHANNEL_BYTES,
        slot: "mock".into(),
    };
    let (mut stream, server, observed) = start_with(limits, options);
    let frames = script.len();
    for s in script {
        server.send(s).unwrap();
    }
    // Every event up to the stop LSN; the application does not ask past the last one.
    for _ in 0..frames {
        stream.next_event().await.unwrap().unwrap();
    }
    // Then the connection breaks, before the application stops the stream.
    server.send(Script::Fail).unwrap();
    let read = wait_for(Duration::from_secs(60), || {
        (observed.failures_read.load(Ordering::Acquire) == 1).then_some(())
    })
    .await;
    assert!(read.is_some(), "the failure was not read");
    let outcome = tokio::time::timeout(Duration::from_secs(60), stream.stop())
        .await
        .expect("stop returns (the task must not hang or spin)");
    assert!(
        matches!(outcome, Err(Error::Transport(TransportError::Closed))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn byte_budget_bounds_what_waits_for_the_application() {
    // 200 inserts of about 1 KiB each, a budget of 8 KiB and room for 1000 events.
    let rows = 200u64;
    let script = inserts(rows, 1024);
    let mut options = CoreOptions::new(ProtocolVersion::V4);
    options.read_timeout = ReadTimeout::Disabled;
    options.status_interval = Duration::from_millis(20);
    let limits = ChannelLimits {
        events: 1000,
        bytes: 8 * 1024,
        slot: "mock".into(),
    };
    let (mut stream, server, observed) = start_with(limits, options);
    for s in script {
        server.send(s).unwrap();
    }
    let first = stream.next_event().await.unwrap().unwrap();
    assert!(matches!(first.kind(), EventKind::Begin(_)));
    // Let the driver run for a while (status updates prove it does) without the application
    // reading: the channel holds about 8 events of 1 KiB (one may exceed the budget), plus the
    // frame the core holds and the one being read — never the 200 it could read otherwise.
    let ran = wait_for(Duration::from_secs(60), || {
        (observed.status_updates().len() >= 10).then_some(())
    })
    .await;
    assert!(ran.is_some(), "the driver stopped sending status updates");
    let read = observed.frames_read.load(Ordering::Acquire);
    assert!(
        read <= 2 + 8 + 1 + 2,
        "read {read} frames of 1 KiB with a budget of 8 KiB"
    );
    // Everything still arrives once the application reads.
    let mut inserts = 0;
    while inserts < rows {
        if let EventKind::Insert(_) = stream.next_event().await.unwrap().unwrap().kind() {
            inserts += 1;
        }
    }
    stream.stop().await.unwrap();
}

#[tokio::test]
async fn an_event_is_acknowledged_only_through_its_own_stream() {
    let (mut a, server_a, _) = start(16, Duration::from_secs(10));
    let (b, _server_b, _) = start(16, Duration::from_secs(10));
    let (script, end) = big_transaction(1);
    for s in script {
        server_a.send(s).unwrap();
    }
    let mut commit = None;
    while commit.is_none() {
        let event = a.next_event().await.unwrap().unwrap();
        if matches!(event.kind(), EventKind::Commit(_)) {
            commit = Some(event);
        }
    }
    let commit = commit.unwrap();
    assert_eq!(b.feedback().ack(&commit), Err(crate::ForeignEvent));
    assert_eq!(
        b.feedback().processed_lsn(),
        Lsn(0),
        "nothing reported to b"
    );
    assert_eq!(a.feedback().ack(&commit), Ok(Some(end)));
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_silent_server_fails_at_the_fixed_read_deadline() {
    let mut options = CoreOptions::new(ProtocolVersion::V4);
    options.read_timeout = ReadTimeout::Fixed(Duration::from_secs(2));
    options.status_interval = Duration::from_millis(200);
    let limits = ChannelLimits {
        events: 16,
        bytes: crate::config::DEFAULT_CHANNEL_BYTES,
        slot: "mock".into(),
    };
    let (mut stream, server, _observed) = start_with(limits, options);
    let (script, _) = big_transaction(1);
    let frames = script.len();
    for s in script {
        server.send(s).unwrap();
    }
    for _ in 0..frames {
        stream.next_event().await.unwrap().unwrap();
    }
    // The script is over: the "server" stays connected and silent.
    let error = tokio::time::timeout(Duration::from_secs(60), stream.next_event())
        .await
        .expect("the deadline fires")
        .expect("an item")
        .expect_err("a read timeout");
    assert!(matches!(error, Error::ReadTimeout { .. }), "{error:?}");
    drop(server);
}

/// Inserts of `len`-byte values after a Begin and the Relation, as one scripted read.
fn inserts(rows: u64, len: usize) -> Vec<Script> {
    let base = 0x20_0000u64;
    let mut script = vec![frame(
        base,
        &OwnedMessage::Begin(Begin {
            final_lsn: Lsn(base + 16 * (rows + 2)),
            commit_time: PgTimestamp(1),
            xid: Xid(8),
        }),
    )];
    let (relation, _) = big_transaction(0);
    script.push(relation.into_iter().nth(1).unwrap());
    for i in 0..rows {
        script.push(frame(
            base + 32 + 16 * i,
            &OwnedMessage::Insert(Insert {
                xid: None,
                relation: Oid(1),
                new: OwnedTupleData {
                    columns: vec![OwnedColumn::Text(Bytes::from(vec![b'y'; len]))],
                },
            }),
        ));
    }
    script
}

#[tokio::test]
async fn what_one_read_brings_is_handed_over_as_one_batch() {
    let (mut stream, server, _observed) = start(1000, Duration::from_secs(10));
    let script = inserts(100, 8);
    let total = script.len();
    // All frames are buffered before the driver first runs (current-thread runtime): its
    // first read drains them, and the application gets them in one batch.
    for s in script {
        server.send(s).unwrap();
    }
    let batch = stream.next_batch().await.unwrap();
    assert_eq!(batch.len(), total);
    let kinds: Vec<_> = batch.map(|e| e.unwrap().into_kind()).collect();
    assert!(matches!(kinds[0], EventKind::Begin(_)));
    assert!(matches!(kinds[1], EventKind::Relation(_)));
    assert!(kinds[2..].iter().all(|k| matches!(k, EventKind::Insert(_))));
    stream.stop().await.unwrap();
}

#[tokio::test]
async fn batches_stay_within_the_event_and_byte_bounds() {
    // Room for 10 events: no batch holds more, and every event still arrives, in order.
    let (mut stream, server, _observed) = start(10, Duration::from_secs(10));
    for s in inserts(95, 8) {
        server.send(s).unwrap();
    }
    let mut seen = 0;
    while seen < 97 {
        let batch = stream.next_batch().await.unwrap();
        assert!(
            !batch.is_empty() && batch.len() <= 10,
            "{} events",
            batch.len()
        );
        seen += batch.len();
    }
    assert_eq!(seen, 97);
    stream.stop().await.unwrap();

    // 4 KiB of messages with 1 KiB rows: at most 4 rows and one more (the event that crosses
    // the budget is admitted) per batch.
    let mut options = CoreOptions::new(ProtocolVersion::V4);
    options.read_timeout = ReadTimeout::Disabled;
    let limits = ChannelLimits {
        events: 1000,
        bytes: 4 * 1024,
        slot: "mock".into(),
    };
    let (mut stream, server, _observed) = start_with(limits, options);
    for s in inserts(60, 1024) {
        server.send(s).unwrap();
    }
    let mut rows = 0;
    while rows < 60 {
        let batch = stream.next_batch().await.unwrap();
        let bytes: usize = batch
            .iter()
            .map(|e| e.as_ref().unwrap().xlog_data().data.len())
            .sum();
        let largest = batch
            .iter()
            .map(|e| e.as_ref().unwrap().xlog_data().data.len())
            .max()
            .unwrap();
        assert!(bytes < 4 * 1024 + largest, "a batch of {bytes} bytes");
        rows += batch
            .filter(|e| matches!(e.as_ref().unwrap().kind(), EventKind::Insert(_)))
            .count();
    }
    stream.stop().await.unwrap();
}

#[tokio::test]
async fn next_event_and_next_batch_mix_without_losing_or_repeating() {
    let (mut stream, server, _observed) = start(1000, Duration::from_secs(10));
    let script = inserts(20, 8);
    let total = script.len();
    for s in script {
        server.send(s).unwrap();
    }
    let first = stream.next_event().await.unwrap().unwrap();
    assert!(matches!(first.kind(), EventKind::Begin(_)));
    // The rest of the read comes as the next batch, starting after the event taken.
    let rest = stream.next_batch().await.unwrap();
    assert_eq!(rest.len(), total - 1);
    let kinds: Vec<_> = rest.map(|e| e.unwrap().into_kind()).collect();
    assert!(matches!(kinds[0], EventKind::Relation(_)));
    stream.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn coalescing_waits_after_a_small_read_but_not_after_batches_the_channel_cut_short() {
    let budget = Duration::from_millis(50);
    let mut options = CoreOptions::new(ProtocolVersion::V4);
    options.status_interval = Duration::from_secs(10);
    options.read_timeout = ReadTimeout::Disabled;
    options.coalesce = crate::ReadCoalescing::new(budget);
    let limits = ChannelLimits {
        events: 10,
        bytes: crate::config::DEFAULT_CHANNEL_BYTES,
        slot: "mock".into(),
    };
    let (mut stream, server, _observed) = start_with(limits, options);
    let (mut script, _) = big_transaction(95);
    let rest = script.split_off(5);
    // A small read (a few dozen bytes, all the transport had): the driver waits out the
    // budget before reading again.
    for s in script {
        server.send(s).unwrap();
    }
    let first = stream.next_batch().await.unwrap();
    assert_eq!(first.len(), 5);
    let small_read_at = tokio::time::Instant::now();
    drop(first);
    // 93 frames wait; the channel's room of 10 cuts every batch short although each is only a
    // few hundred bytes. None of those is a small read, so no batch waits for the next.
    for s in rest {
        server.send(s).unwrap();
    }
    let mut seen = 0;
    while seen < 93 {
        seen += stream.next_batch().await.unwrap().len();
    }
    let waited = small_read_at.elapsed();
    assert!(
        waited >= budget,
        "read again after {waited:?}, within the budget"
    );
    assert!(
        waited < 2 * budget,
        "{waited:?}: a batch cut short by the channel's room was taken for a small read"
    );
    // The last of those batches took only frames left behind, so its size says nothing of
    // what the server sent since: the driver reads again at once.
    let drained_at = tokio::time::Instant::now();
    for s in inserts(3, 8) {
        server.send(s).unwrap();
    }
    let mut seen = 0;
    while seen < 5 {
        seen += stream.next_batch().await.unwrap().len();
    }
    let waited = drained_at.elapsed();
    assert!(
        waited < budget,
        "{waited:?}: the frames left behind by a cut-short batch were taken for a small read"
    );
    stream.stop().await.unwrap();
}
