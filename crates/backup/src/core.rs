//! The sans-IO heart of a base backup: CopyOut starts, CopyData payloads and CopyOut ends in,
//! [`BackupEvent`]s out — the same sequence for PostgreSQL 14's one-CopyOut-per-archive form
//! and 15+'s single typed stream.

use std::collections::VecDeque;

use bytes::Bytes;
use pg_walstream_codec::Lsn;
use pg_walstream_codec::backup::BackupMessage;

use crate::error::{BackupError, Result};

/// Two zero blocks: the end-of-archive marker PostgreSQL 14 leaves out of its tar streams.
static TAR_TERMINATOR: [u8; 1024] = [0; 1024];

/// A WAL position and its timeline (the start and end result sets of `BASE_BACKUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The WAL position.
    pub lsn: Lsn,
    /// Its timeline.
    pub timeline: u32,
}

/// One row of the tablespace list `BASE_BACKUP` sends before the archives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tablespace {
    /// The tablespace's OID; `None` for the main data directory (always the last row).
    pub oid: Option<u32>,
    /// Its location on the server; `None` for the main data directory.
    pub location: Option<String>,
    /// The server's size estimate in kB (only with `PROGRESS`).
    pub size_kb: Option<u64>,
}

/// An archive of the backup: the main data directory or one tablespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// The server's file name for it (`base.tar`, `16385.tar`, with `.gz`/`.lz4`/`.zst` when
    /// compressed on the server). On PostgreSQL 14, which names nothing, `base.tar` or
    /// `<oid>.tar`.
    pub name: String,
    /// The tablespace OID; `None` for the main data directory.
    pub tablespace_oid: Option<u32>,
    /// The tablespace's location on the server; `None` for the main data directory.
    pub location: Option<String>,
}

impl ArchiveInfo {
    /// Whether this is the main data directory's archive.
    pub fn is_base(&self) -> bool {
        self.location.is_none()
    }
}

/// Bytes of archive content done, and the expected total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes done (before server-side compression). Never decreases.
    pub done: u64,
    /// The expected total: the server's estimate (with `PROGRESS`), raised to `done` when
    /// that is larger; the last report of a backup has `total == done`.
    pub total: Option<u64>,
}

/// What a base backup delivers, in order: for each archive `Archive`, its `Data` chunks and
/// `ArchiveEnd`; `Progress` anywhere in between; then `Manifest`, `ManifestData`,
/// `ManifestEnd` when a manifest was asked for; finally `End`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackupEvent {
    /// A new archive starts.
    Archive(ArchiveInfo),
    /// A chunk of the current archive (zero-copy from the receive buffer). Every archive
    /// is a complete tar stream, end-of-archive blocks included, on every version.
    Data(Bytes),
    /// The current archive is complete.
    ArchiveEnd,
    /// Progress.
    Progress(Progress),
    /// The backup manifest starts.
    Manifest,
    /// A chunk of the manifest.
    ManifestData(Bytes),
    /// The manifest is complete.
    ManifestEnd,
    /// The backup ended at this position (the WAL up to here is needed to restore it).
    End(Position),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before a (legacy: the next) CopyOut.
    Idle,
    /// Inside a CopyOut, before the first archive (15+).
    Copy,
    Archive,
    Manifest,
    Ended,
}

/// The state machine turning the CopyOut streams of `BASE_BACKUP` into [`BackupEvent`]s.
///
/// Feed it with [`handle_copy_start`](Self::handle_copy_start),
/// [`handle_copy_data`](Self::handle_copy_data), [`handle_copy_end`](Self::handle_copy_end)
/// and [`handle_end`](Self::handle_end); take events with [`poll_event`](Self::poll_event).
#[derive(Debug)]
pub struct StreamCore {
    legacy: bool,
    tablespaces: Vec<Tablespace>,
    manifest_expected: bool,
    copies: usize,
    phase: Phase,
    done: u64,
    total: Option<u64>,
    events: VecDeque<BackupEvent>,
}

impl StreamCore {
    /// A core for a server that sends the PostgreSQL 14 form (`legacy`) or the 15+ one, with
    /// the tablespace list it sent and whether a manifest was asked for.
    pub fn new(legacy: bool, tablespaces: Vec<Tablespace>, manifest_expected: bool) -> Self {
        let total = tablespaces
            .iter()
            .map(|t| t.size_kb.map(|kb| kb.saturating_mul(1024)))
            .try_fold(0u64, |sum, size| size.map(|s| sum.saturating_add(s)));
        StreamCore {
            legacy,
            tablespaces,
            manifest_expected,
            copies: 0,
            phase: Phase::Idle,
            done: 0,
            total,
            events: VecDeque::new(),
        }
    }

    /// The tablespace list.
    pub fn tablespaces(&self) -> &[Tablespace] {
        &self.tablespaces
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<BackupEvent> {
        self.events.pop_front()
    }

    /// A CopyOut stream started.
    ///
    /// # Errors
    /// [`BackupError::Protocol`] for a CopyOut inside another or one more than expected.
    pub fn handle_copy_start(&mut self) -> Result<()> {
        if self.phase != Phase::Idle {
            return Err(protocol(
                "a CopyOut",
                "inside a COPY stream or after the end",
            ));
        }
        let index = self.copies;
        self.copies += 1;
        if !self.legacy {
            if index > 0 {
                return Err(protocol("a second CopyOut", "of a PostgreSQL 15+ backup"));
            }
            self.phase = Phase::Copy;
            return Ok(());
        }
        if let Some(tablespace) = self.tablespaces.get(index) {
            let name = match tablespace.oid {
                Some(oid) => format!("{oid}.tar"),
                None => "base.tar".to_owned(),
            };
            self.events.push_back(BackupEvent::Archive(ArchiveInfo {
                name,
                tablespace_oid: tablespace.oid,
                location: tablespace.location.clone(),
            }));
            self.phase = Phase::Archive;
        } else if index == self.tablespaces.len() && self.manifest_expected {
            self.events.push_back(BackupEvent::Manifest);
            self.phase = Phase::Manifest;
        } else {
            return Err(protocol(
                "a CopyOut",
                "after every tablespace and the manifest were sent",
            ));
        }
        Ok(())
    }

    /// A CopyData payload arrived.
    ///
    /// # Errors
    /// [`BackupError::Decode`] for a malformed 15+ message; [`BackupError::Protocol`] for
    /// data outside an archive or the manifest, or an archive after the manifest.
    pub fn handle_copy_data(&mut self, payload: Bytes) -> Result<()> {
        if self.legacy {
            return match self.phase {
                Phase::Archive => {
                    self.add_done(payload.len() as u64);
                    self.events.push_back(BackupEvent::Data(payload));
                    self.push_progress();
                    Ok(())
                }
                Phase::Manifest => {
                    self.events.push_back(BackupEvent::ManifestData(payload));
                    Ok(())
                }
                _ => Err(protocol("CopyData", "outside a COPY stream")),
            };
        }
        if matches!(self.phase, Phase::Idle | Phase::Ended) {
            return Err(protocol("CopyData", "outside the COPY stream"));
        }
        match BackupMessage::parse(&payload)? {
            BackupMessage::NewArchive(archive) => {
                if self.phase == Phase::Manifest {
                    return Err(protocol("a new archive", "after the manifest"));
                }
                self.close_archive();
                let tablespace_oid = archive.tablespace_location.as_ref().and_then(|location| {
                    self.tablespaces
                        .iter()
                        .find(|t| t.location.as_ref() == Some(location))
                        .and_then(|t| t.oid)
                });
                self.events.push_back(BackupEvent::Archive(ArchiveInfo {
                    name: archive.name,
                    tablespace_oid,
                    location: archive.tablespace_location,
                }));
                self.phase = Phase::Archive;
            }
            BackupMessage::Data(data) => match self.phase {
                Phase::Archive => self.events.push_back(BackupEvent::Data(data)),
                Phase::Manifest => self.events.push_back(BackupEvent::ManifestData(data)),
                _ => return Err(protocol("archive data", "before the first archive")),
            },
            BackupMessage::Progress(done) => {
                self.add_done(done.saturating_sub(self.done));
                self.push_progress();
            }
            BackupMessage::Manifest => {
                if self.phase == Phase::Manifest {
                    return Err(protocol("a second manifest", "in one backup"));
                }
                self.close_archive();
                self.events.push_back(BackupEvent::Manifest);
                self.phase = Phase::Manifest;
            }
            _ => return Err(protocol("an unknown message", "in the backup stream")),
        }
        Ok(())
    }

    /// The current CopyOut stream ended (CopyDone).
    ///
    /// # Errors
    /// [`BackupError::Protocol`] outside a COPY stream.
    pub fn handle_copy_end(&mut self) -> Result<()> {
        match self.phase {
            Phase::Archive => self.close_archive(),
            Phase::Manifest => self.events.push_back(BackupEvent::ManifestEnd),
            Phase::Copy => {}
            Phase::Idle | Phase::Ended => {
                return Err(protocol("the end of a COPY", "outside a COPY stream"));
            }
        }
        self.phase = Phase::Idle;
        Ok(())
    }

    /// The end position arrived: a last [`Progress`] with `total == done`, then
    /// [`BackupEvent::End`].
    ///
    /// # Errors
    /// [`BackupError::Protocol`] inside a COPY stream, before any archive (14) or twice.
    pub fn handle_end(&mut self, end: Position) -> Result<()> {
        if self.phase != Phase::Idle || self.copies == 0 {
            return Err(protocol("the end position", "before the archives ended"));
        }
        if self.legacy && self.copies < self.tablespaces.len() {
            return Err(protocol(
                "the end position",
                "before every tablespace was sent",
            ));
        }
        self.phase = Phase::Ended;
        self.total = Some(self.done);
        self.events.push_back(BackupEvent::Progress(Progress {
            done: self.done,
            total: self.total,
        }));
        self.events.push_back(BackupEvent::End(end));
        Ok(())
    }

    fn close_archive(&mut self) {
        if self.phase == Phase::Archive {
            if self.legacy {
                self.events
                    .push_back(BackupEvent::Data(Bytes::from_static(&TAR_TERMINATOR)));
            }
            self.events.push_back(BackupEvent::ArchiveEnd);
        }
    }

    fn add_done(&mut self, bytes: u64) {
        self.done = self.done.saturating_add(bytes);
        if let Some(total) = &mut self.total {
            *total = (*total).max(self.done);
        }
    }

    fn push_progress(&mut self) {
        self.events.push_back(BackupEvent::Progress(Progress {
            done: self.done,
            total: self.total,
        }));
    }
}

fn protocol(got: &'static str, during: &'static str) -> BackupError {
    BackupError::Protocol { got, during }
}

#[cfg(test)]
mod tests {
    use pg_walstream_codec::backup::NewArchive;

    use super::*;

    fn drain(core: &mut StreamCore) -> Vec<BackupEvent> {
        std::iter::from_fn(|| core.poll_event()).collect()
    }

    fn wire(message: &BackupMessage) -> Bytes {
        let mut buf = Vec::new();
        message.encode(&mut buf);
        Bytes::from(buf)
    }

    fn tablespaces() -> Vec<Tablespace> {
        vec![
            Tablespace {
                oid: Some(16_385),
                location: Some("/ts".into()),
                size_kb: Some(1),
            },
            Tablespace {
                oid: None,
                location: None,
                size_kb: Some(2),
            },
        ]
    }

    const END: Position = Position {
        lsn: Lsn(0x300_0000),
        timeline: 1,
    };

    #[test]
    fn modern_stream() {
        let mut core = StreamCore::new(false, tablespaces(), true);
        core.handle_copy_start().unwrap();
        for message in [
            BackupMessage::NewArchive(NewArchive {
                name: "16385.tar.gz".into(),
                tablespace_location: Some("/ts".into()),
            }),
            BackupMessage::Data(Bytes::from_static(b"ts")),
            BackupMessage::Progress(1024),
            BackupMessage::NewArchive(NewArchive {
                name: "base.tar.gz".into(),
                tablespace_location: None,
            }),
            BackupMessage::Data(Bytes::from_static(b"base")),
            BackupMessage::Progress(4096),
            BackupMessage::Manifest,
            BackupMessage::Data(Bytes::from_static(b"{}")),
        ] {
            core.handle_copy_data(wire(&message)).unwrap();
        }
        core.handle_copy_end().unwrap();
        core.handle_end(END).unwrap();
        let events = drain(&mut core);
        let progress = |done, total| {
            BackupEvent::Progress(Progress {
                done,
                total: Some(total),
            })
        };
        assert_eq!(
            events,
            [
                BackupEvent::Archive(ArchiveInfo {
                    name: "16385.tar.gz".into(),
                    tablespace_oid: Some(16_385),
                    location: Some("/ts".into()),
                }),
                BackupEvent::Data(Bytes::from_static(b"ts")),
                progress(1024, 3072),
                BackupEvent::ArchiveEnd,
                BackupEvent::Archive(ArchiveInfo {
                    name: "base.tar.gz".into(),
                    tablespace_oid: None,
                    location: None,
                }),
                BackupEvent::Data(Bytes::from_static(b"base")),
                progress(4096, 4096),
                BackupEvent::ArchiveEnd,
                BackupEvent::Manifest,
                BackupEvent::ManifestData(Bytes::from_static(b"{}")),
                BackupEvent::ManifestEnd,
                progress(4096, 4096),
                BackupEvent::End(END),
            ]
        );
    }

    #[test]
    fn legacy_copies_are_normalised() {
        let mut core = StreamCore::new(true, tablespaces(), true);
        for chunk in [&b"tablespace"[..], b"base"] {
            core.handle_copy_start().unwrap();
            core.handle_copy_data(Bytes::copy_from_slice(chunk))
                .unwrap();
            core.handle_copy_end().unwrap();
        }
        core.handle_copy_start().unwrap();
        core.handle_copy_data(Bytes::from_static(b"{}")).unwrap();
        core.handle_copy_end().unwrap();
        assert!(core.handle_copy_start().is_err());
        let mut core_end = core;
        core_end.handle_end(END).unwrap();
        let events = drain(&mut core_end);
        let names: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                BackupEvent::Archive(a) => Some(a.name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["16385.tar", "base.tar"]);
        let terminators = events
            .iter()
            .filter(|e| matches!(e, BackupEvent::Data(d) if d.len() == 1024 && d.iter().all(|&b| b == 0)))
            .count();
        assert_eq!(terminators, 2);
        assert!(events.contains(&BackupEvent::ManifestData(Bytes::from_static(b"{}"))));
        assert_eq!(
            events[events.len() - 2],
            BackupEvent::Progress(Progress {
                done: 14,
                total: Some(14)
            })
        );
    }

    #[test]
    fn out_of_order_input_is_an_error() {
        let mut core = StreamCore::new(false, tablespaces(), true);
        assert!(core.handle_copy_data(Bytes::from_static(b"dx")).is_err());
        core.handle_copy_start().unwrap();
        assert!(core.handle_copy_data(Bytes::from_static(b"dx")).is_err());
        assert!(matches!(
            core.handle_copy_data(Bytes::from_static(b"z")),
            Err(BackupError::Decode(_))
        ));
        core.handle_copy_data(Bytes::from_static(b"m")).unwrap();
        assert!(core.handle_copy_data(Bytes::from_static(b"m")).is_err());
        assert!(
            core.handle_copy_data(Bytes::from_static(b"nb\0\0"))
                .is_err()
        );
        assert!(core.handle_end(END).is_err());
        core.handle_copy_end().unwrap();
        assert!(core.handle_copy_start().is_err());
        let mut legacy = StreamCore::new(true, tablespaces(), false);
        legacy.handle_copy_start().unwrap();
        legacy.handle_copy_end().unwrap();
        assert!(legacy.handle_end(END).is_err());
    }
}
