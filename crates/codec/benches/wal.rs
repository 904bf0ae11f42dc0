//! Decoder throughput: WAL laid out by `WalWriter` (records of mixed sizes, some spanning
//! pages), decoded with CRC checks, in 64 KiB chunks.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pg_walstream_codec::Lsn;
use pg_walstream_codec::wal::writer::WalWriter;
use pg_walstream_codec::wal::{RmgrId, WalDecoder, WalVersion};

fn wal() -> Vec<u8> {
    let mut w = WalWriter::new(WalVersion::V16, Lsn::new(0x0100_0000), 16 << 20, 8192);
    let mut size = 0usize;
    for i in 0..40_000u32 {
        // Mostly small records (heap/btree-like), every 16th an 8 KiB page image.
        size = if i % 16 == 0 {
            8200
        } else {
            (size * 7 + 13) % 180 + 20
        };
        let _ = w.append_main_data(RmgrId::HEAP, 0, i, &vec![i as u8; size]);
    }
    w.finish_page();
    w.bytes().to_vec()
}

fn decode(c: &mut Criterion) {
    let bytes = wal();
    let mut group = c.benchmark_group("wal");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("decode_with_crc", |b| {
        b.iter(|| {
            let mut d = WalDecoder::new(Lsn::new(0x0100_0000));
            let mut n = 0u64;
            for chunk in bytes.chunks(64 << 10) {
                d.feed(chunk);
                while let Ok(Some(r)) = d.next_record() {
                    n += u64::from(r.total_len());
                }
            }
            n
        });
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
