//! The committed fuzz seed corpus (`fuzz/corpus/`) doubles as a fixture set: every seed is
//! a valid message that decodes and re-encodes byte-identically, and the seeds cover every
//! pgoutput message tag. Crash inputs saved there as `crash-*` only have to not panic.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use bytes::Bytes;
use pg_walstream_codec::pgoutput::{PgOutputDecoder, ProtocolVersion, decode_message};
use pg_walstream_codec::replication::{BackendMessage, FrontendMessage};

fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

fn version(ctl: u8) -> ProtocolVersion {
    ProtocolVersion::try_from(u32::from(ctl % 4) + 1).unwrap()
}

fn reencode(msg: &pg_walstream_codec::pgoutput::Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode(&mut out).unwrap();
    out
}

#[test]
fn pgoutput_message_seeds_decode() {
    let mut tags = BTreeSet::new();
    for (name, data) in files("pgoutput_message") {
        let Some((&ctl, body)) = data.split_first() else {
            continue;
        };
        let res = decode_message(body, version(ctl), ctl & 4 != 0);
        if name.starts_with("crash-") {
            continue;
        }
        let msg = res.unwrap_or_else(|e| panic!("seed {name}: {e}"));
        assert_eq!(reencode(&msg), body, "seed {name}");
        tags.insert(msg.tag());
    }
    let all: BTreeSet<u8> = b"BCORYIUDTMSEcAbPKrp".iter().copied().collect();
    assert_eq!(tags, all, "seeds cover every tag");
}

#[test]
fn pgoutput_stream_seeds_decode() {
    for (name, data) in files("pgoutput_stream") {
        let Some((&ctl, mut rest)) = data.split_first() else {
            continue;
        };
        let mut decoder = PgOutputDecoder::new(version(ctl));
        let mut count = 0;
        while let Some((len, tail)) = rest.split_first_chunk::<2>() {
            let Some((msg, tail)) = tail.split_at_checked(usize::from(u16::from_be_bytes(*len)))
            else {
                break;
            };
            rest = tail;
            let res = decoder.decode(msg);
            if name.starts_with("crash-") {
                if res.is_err() {
                    break;
                }
                continue;
            }
            let decoded = res.unwrap_or_else(|e| panic!("seed {name}, message {count}: {e}"));
            assert_eq!(reencode(&decoded), msg, "seed {name}, message {count}");
            count += 1;
        }
        assert!(
            name.starts_with("crash-") || (count > 3 && rest.is_empty()),
            "seed {name}"
        );
        assert!(
            !decoder.in_stream(),
            "seed {name} ends inside a stream block"
        );
    }
}

#[test]
fn replication_seeds_decode() {
    for (name, data) in files("replication") {
        let backend = BackendMessage::parse(&Bytes::from(data.clone()));
        let frontend = FrontendMessage::parse(&data);
        if name.starts_with("crash-") {
            continue;
        }
        let mut out = Vec::new();
        match (backend, frontend) {
            (Ok(m), Err(_)) => m.encode(&mut out),
            (Err(_), Ok(m)) => m.encode(&mut out),
            other => panic!("seed {name}: {other:?}"),
        }
        assert_eq!(out, data, "seed {name}");
    }
}

#[test]
fn backup_seeds_decode() {
    for (name, data) in files("backup") {
        let message = pg_walstream_codec::backup::BackupMessage::parse(&Bytes::from(data.clone()));
        if name.starts_with("crash-") {
            continue;
        }
        let message = message.unwrap_or_else(|e| panic!("seed {name}: {e}"));
        let mut out = Vec::new();
        message.encode(&mut out);
        assert_eq!(out, data, "seed {name}");
    }
}
