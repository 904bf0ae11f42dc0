//! Checks of transaction-level fields (xids, LSNs, timestamps) against what the server
//! reports and the wall clock.

use std::time::SystemTime;

use pg_walstream_codec::pgoutput::Message;
use pg_walstream_codec::{Lsn, PgTimestamp};

use super::workload::ORIGIN_COMMIT_TIME;

/// Per-stream state for the header checks.
pub(crate) struct Headers {
    /// The wall-clock interval the workload ran in (with slack).
    pub(crate) window: (SystemTime, SystemTime),
    open_final_lsn: Option<Lsn>,
    open_prepare_lsn: Option<Lsn>,
    last_commit_lsn: Lsn,
    /// Begin/Commit pairs stamped with the replication origin's commit time.
    pub(crate) origin_stamped: usize,
}

impl Headers {
    pub(crate) fn new(window: (SystemTime, SystemTime)) -> Self {
        Self {
            window,
            open_final_lsn: None,
            open_prepare_lsn: None,
            last_commit_lsn: Lsn::INVALID,
            origin_stamped: 0,
        }
    }

    fn time(&self, t: PgTimestamp, what: &str) -> Result<(), String> {
        if t == ORIGIN_COMMIT_TIME {
            return Ok(());
        }
        let st = t
            .to_system_time()
            .ok_or(format!("{what} {t:?} out of range"))?;
        if st < self.window.0 || st > self.window.1 {
            return Err(format!(
                "{what} {st:?} outside the workload's {:?}",
                self.window
            ));
        }
        Ok(())
    }

    fn xid(got: u32, server: u32, what: &str) -> Result<(), String> {
        if got == server {
            Ok(())
        } else {
            Err(format!("{what} xid {got}, server reports {server}"))
        }
    }

    fn commit_order(&mut self, commit: Lsn, end: Lsn, what: &str) -> Result<(), String> {
        if end <= commit || commit <= self.last_commit_lsn {
            return Err(format!(
                "{what}: commit {commit}, end {end}, previous commit {}",
                self.last_commit_lsn
            ));
        }
        self.last_commit_lsn = commit;
        Ok(())
    }

    /// Checks one message; `server_xid` is the xid column of its row.
    pub(crate) fn check(&mut self, msg: &Message<'_>, server_xid: u32) -> Result<(), String> {
        match msg {
            Message::Begin(b) => {
                Self::xid(b.xid.0, server_xid, "Begin")?;
                self.time(b.commit_time, "Begin commit time")?;
                self.origin_stamped += usize::from(b.commit_time == ORIGIN_COMMIT_TIME);
                self.open_final_lsn = Some(b.final_lsn);
            }
            Message::Commit(c) => {
                if self.open_final_lsn.take() != Some(c.commit_lsn) {
                    return Err(format!(
                        "Commit LSN {} differs from Begin's final LSN",
                        c.commit_lsn
                    ));
                }
                self.time(c.commit_time, "Commit time")?;
                self.commit_order(c.commit_lsn, c.end_lsn, "Commit")?;
            }
            Message::StreamStart(s) => Self::xid(s.xid.0, server_xid, "Stream Start")?,
            Message::StreamCommit(c) => {
                Self::xid(c.xid.0, server_xid, "Stream Commit")?;
                self.time(c.commit_time, "Stream Commit time")?;
                self.commit_order(c.commit_lsn, c.end_lsn, "Stream Commit")?;
            }
            Message::StreamAbort(a) => {
                // The row carries the aborted (sub)transaction's xid.
                Self::xid(a.subxid.0, server_xid, "Stream Abort subxid")?;
                if let Some(info) = a.abort {
                    self.time(info.abort_time, "Stream Abort time")?;
                    if info.abort_lsn.is_invalid() {
                        return Err("Stream Abort with an invalid abort LSN".into());
                    }
                }
            }
            Message::BeginPrepare(b) => {
                Self::xid(b.xid.0, server_xid, "Begin Prepare")?;
                self.time(b.prepare_time, "Begin Prepare time")?;
                self.open_prepare_lsn = Some(b.prepare_lsn);
            }
            Message::Prepare(p) => {
                Self::xid(p.xid.0, server_xid, "Prepare")?;
                if self.open_prepare_lsn.take() != Some(p.prepare_lsn) || p.end_lsn <= p.prepare_lsn
                {
                    return Err(format!("Prepare LSNs {} / {}", p.prepare_lsn, p.end_lsn));
                }
            }
            Message::StreamPrepare(p) => {
                Self::xid(p.xid.0, server_xid, "Stream Prepare")?;
                self.time(p.prepare_time, "Stream Prepare time")?;
            }
            Message::CommitPrepared(c) => {
                Self::xid(c.xid.0, server_xid, "Commit Prepared")?;
                self.time(c.commit_time, "Commit Prepared time")?;
                self.commit_order(c.commit_lsn, c.end_lsn, "Commit Prepared")?;
            }
            Message::RollbackPrepared(r) => {
                Self::xid(r.xid.0, server_xid, "Rollback Prepared")?;
                self.time(r.rollback_time, "Rollback Prepared time")?;
                if r.rollback_end_lsn <= r.prepare_end_lsn {
                    return Err("Rollback Prepared ends before its prepare".into());
                }
            }
            _ => {}
        }
        Ok(())
    }
}
