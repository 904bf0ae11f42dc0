//! Property-based fuzzing of the protocol types with the `arbitrary` crate, for a bounded
//! time: `cargo run -p example-arbitrary-fuzzing -- [SECONDS] [SEED]` (default 3 s, seed 1).
//!
//! With the codec's `arbitrary` feature every owned message type implements
//! `arbitrary::Arbitrary`, generating values the protocol can carry. This checks, on random
//! input bytes:
//! - pgoutput messages (protocol v4): encode → `decode_message` → `into_owned` gives the
//!   message back;
//! - replication CopyData messages (`w`, `k` from the server; `r`, `h` from the client):
//!   encode → parse gives the message back;
//! - WAL page headers: encode → parse gives the header back, and a `WalDecoder` fed the page
//!   returns a record or a typed error, never a panic;
//! - an application's consumer (here `RowCounter`, standing in for yours) survives any
//!   sequence of generated messages fed through a stateful `PgOutputDecoder`: decode errors are
//!   values, and the consumer's invariants hold.
//!
//! A failure panics with the seed and the iteration, so it can be replayed. For
//! coverage-guided fuzzing, the same `Arbitrary` impls plug into cargo-fuzz
//! (`fuzz_target!(|m: OwnedMessage| …)`).

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use pg_walstream_codec::Lsn;
use pg_walstream_codec::pgoutput::{
    Message, OwnedMessage, PgOutputDecoder, ProtocolVersion, decode_message,
};
use pg_walstream_codec::replication::{BackendMessage, FrontendMessage};
use pg_walstream_codec::wal::{PageHeader, WalDecoder};

/// A deterministic xorshift64* generator for the raw input bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, buf: &mut Vec<u8>) {
        let len = (self.next() % 2048) as usize;
        buf.clear();
        while buf.len() < len {
            buf.extend_from_slice(&self.next().to_le_bytes());
        }
        buf.truncate(len);
    }
}

/// Whether `message` lies inside a Stream Start/Stop block, which decides how it is decoded:
/// R, Y, I, U, D, T and M carry an xid exactly there, and Stream Stop only appears there.
fn in_stream(message: &OwnedMessage) -> bool {
    match message {
        OwnedMessage::Relation(m) => m.xid.is_some(),
        OwnedMessage::Type(m) => m.xid.is_some(),
        OwnedMessage::Insert(m) => m.xid.is_some(),
        OwnedMessage::Update(m) => m.xid.is_some(),
        OwnedMessage::Delete(m) => m.xid.is_some(),
        OwnedMessage::Truncate(m) => m.xid.is_some(),
        OwnedMessage::Message(m) => m.xid.is_some(),
        OwnedMessage::StreamStop => true,
        _ => false,
    }
}

fn pgoutput_round_trip(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let message = OwnedMessage::arbitrary(u)?;
    let mut wire = Vec::new();
    message
        .encode(&mut wire)
        .unwrap_or_else(|e| panic!("a generated message must encode: {e}: {message:?}"));
    let wire = Bytes::from(wire);
    let decoded = decode_message(&wire, ProtocolVersion::V4, in_stream(&message))
        .unwrap_or_else(|e| panic!("decoding {message:?}: {e}"))
        .into_owned(&wire);
    assert_eq!(decoded, message, "pgoutput round trip");
    Ok(())
}

fn copy_data_round_trip(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let backend = BackendMessage::arbitrary(u)?;
    let mut wire = Vec::new();
    backend.encode(&mut wire);
    let parsed = BackendMessage::parse(&Bytes::from(wire)).expect("backend message parses");
    assert_eq!(parsed, backend, "server CopyData round trip");

    let frontend = FrontendMessage::arbitrary(u)?;
    let mut wire = Vec::new();
    frontend.encode(&mut wire);
    let parsed = FrontendMessage::parse(&wire).expect("frontend message parses");
    assert_eq!(parsed, frontend, "client CopyData round trip");
    Ok(())
}

fn wal_page(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let header = PageHeader::arbitrary(u)?;
    let mut page = Vec::new();
    header.encode(&mut page);
    assert_eq!(
        PageHeader::parse(&page),
        Some(header),
        "page header round trip"
    );
    // The rest of the page is arbitrary too: the decoder must not panic on it.
    page.extend_from_slice(u.bytes(u.len().min(8192 - page.len()))?);
    page.resize(8192, 0);
    let mut decoder = WalDecoder::new(Lsn::new(header.page_addr & !0xFF_FFFF)).with_page_size(8192);
    decoder.feed(&page);
    while let Ok(Some(_record)) = decoder.next_record() {}
    Ok(())
}

/// Your consumer goes here. This one counts rows per transaction and checks that a commit
/// only ever closes a transaction it saw begin.
#[derive(Default)]
struct RowCounter {
    open: Option<u32>,
    rows: u64,
    committed: u64,
}

impl RowCounter {
    fn handle(&mut self, message: &Message<'_>) {
        match message {
            Message::Begin(b) => self.open = Some(b.xid.0),
            Message::Insert(_) | Message::Update(_) | Message::Delete(_) => self.rows += 1,
            Message::Commit(_) => {
                assert!(self.open.take().is_some(), "commit without begin");
                self.committed += 1;
            }
            _ => {}
        }
    }
}

fn consumer(u: &mut Unstructured<'_>, counter: &mut RowCounter) -> arbitrary::Result<()> {
    let mut decoder = PgOutputDecoder::new(ProtocolVersion::V4);
    let mut wire = Vec::new();
    for _ in 0..u.int_in_range(1..=32u8)? {
        let message = OwnedMessage::arbitrary(u)?;
        wire.clear();
        if message.encode(&mut wire).is_err() {
            continue;
        }
        // Out-of-order messages are decode errors (values, not panics); the decoder keeps
        // the transaction framing, so the consumer only sees well-formed sequences.
        if let Ok(decoded) = decoder.decode(&wire) {
            counter.handle(&decoded);
        }
    }
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(3, |s| s.parse().expect("SECONDS"));
    let seed: u64 = args.next().map_or(1, |s| s.parse().expect("SEED"));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = Rng(seed.max(1));
    let mut input = Vec::new();
    let mut counts = [0u64; 4];
    let mut counter = RowCounter::default();
    let mut iteration = 0u64;
    while Instant::now() < deadline {
        for _ in 0..256 {
            iteration += 1;
            rng.fill(&mut input);
            let target = (iteration % 4) as usize;
            let mut u = Unstructured::new(&input);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match target {
                0 => pgoutput_round_trip(&mut u),
                1 => copy_data_round_trip(&mut u),
                2 => wal_page(&mut u),
                _ => consumer(&mut u, &mut counter),
            }));
            match result {
                // Not enough input bytes for a whole value: try the next input.
                Ok(Err(_)) => {}
                Ok(Ok(())) => counts[target] += 1,
                Err(_) => {
                    // The panic message was printed above; say how to replay it.
                    eprintln!("arbitrary-fuzzing: failed at seed {seed}, iteration {iteration}");
                    std::process::exit(1);
                }
            }
        }
    }
    println!(
        "arbitrary-fuzzing: {iteration} inputs in {seconds} s: {} pgoutput round trips, {} \
         CopyData round trips, {} WAL pages, {} consumer sequences ({} rows, {} commits)",
        counts[0], counts[1], counts[2], counts[3], counter.rows, counter.committed
    );
}
