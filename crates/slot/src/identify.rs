//! `IDENTIFY_SYSTEM`, `SHOW` and `TIMELINE_HISTORY`.

use pg_walstream_codec::Lsn;
use pg_walstream_transport::Transport;

use crate::SlotError;
use crate::name::quote_replication_identifier;
use crate::result::{RowReader, one_result_set};

/// What `IDENTIFY_SYSTEM` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentity {
    /// The cluster's unique system identifier.
    pub system_id: u64,
    /// The current timeline.
    pub timeline: u32,
    /// The current WAL flush position.
    pub xlogpos: Lsn,
    /// The database connected to (`replication=database`), `None` for physical connections.
    pub dbname: Option<String>,
}

/// Runs `IDENTIFY_SYSTEM`.
///
/// # Errors
/// Server and connection errors; [`SlotError::BadResult`] for a malformed answer.
pub async fn identify_system(connection: &mut impl Transport) -> Result<SystemIdentity, SlotError> {
    const COMMAND: &str = "IDENTIFY_SYSTEM";
    let set = one_result_set(connection, COMMAND, COMMAND).await?;
    let row = RowReader::single(&set, COMMAND)?;
    Ok(SystemIdentity {
        system_id: row.required_parsed("systemid")?,
        timeline: row.required_parsed("timeline")?,
        xlogpos: row.required_parsed("xlogpos")?,
        dbname: row.text("dbname")?.map(str::to_owned),
    })
}

/// Runs `SHOW name` over a replication connection and returns the setting's value.
///
/// # Errors
/// [`SlotError::InvalidName`] for names that are not identifiers (optionally dotted); server
/// errors (unknown setting) and connection errors.
pub async fn show(connection: &mut impl Transport, name: &str) -> Result<String, SlotError> {
    const COMMAND: &str = "SHOW";
    let quoted = name
        .split('.')
        .map(|part| quote_replication_identifier("setting", part))
        .collect::<Result<Vec<_>, _>>()?
        .join(".");
    let set = one_result_set(connection, COMMAND, &format!("SHOW {quoted}")).await?;
    let row = RowReader::single(&set, COMMAND)?;
    let column = set
        .columns()
        .first()
        .ok_or_else(|| SlotError::bad_result(COMMAND, "no columns"))?
        .clone();
    Ok(row.required(&column)?.to_owned())
}

/// A timeline history file as `TIMELINE_HISTORY` returns it, with its entries parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineHistory {
    /// The history file's name, e.g. `00000002.history`.
    pub file_name: String,
    /// The raw file contents.
    pub content: String,
    /// The parsed entries, oldest first.
    pub entries: Vec<TimelineHistoryEntry>,
}

/// One line of a timeline history file: timeline `timeline` ended (switched to the next one)
/// at `switchpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineHistoryEntry {
    /// The parent timeline.
    pub timeline: u32,
    /// Where the parent timeline ended.
    pub switchpoint: Lsn,
    /// The free-text reason PostgreSQL wrote (e.g. `no recovery target specified`).
    pub reason: String,
}

/// Runs `TIMELINE_HISTORY timeline` (physical or logical replication connection).
///
/// # Errors
/// Server errors (e.g. no history file for timeline 1), connection errors, and
/// [`SlotError::BadResult`] when the file cannot be parsed.
pub async fn timeline_history(
    connection: &mut impl Transport,
    timeline: u32,
) -> Result<TimelineHistory, SlotError> {
    const COMMAND: &str = "TIMELINE_HISTORY";
    let set = one_result_set(connection, COMMAND, &format!("TIMELINE_HISTORY {timeline}")).await?;
    let row = RowReader::single(&set, COMMAND)?;
    let file_name = row.required("filename")?.to_owned();
    let content = row.required("content")?.to_owned();
    let entries = parse_timeline_history(&content)?;
    Ok(TimelineHistory {
        file_name,
        content,
        entries,
    })
}

/// Parses the contents of a timeline history file: lines `timeline<TAB>switchpoint<TAB>reason`;
/// blank lines and `#` comments are skipped, as the server does.
///
/// # Errors
/// [`SlotError::BadResult`] naming the bad line.
pub fn parse_timeline_history(content: &str) -> Result<Vec<TimelineHistoryEntry>, SlotError> {
    let mut entries = Vec::new();
    for line in content.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad =
            || SlotError::bad_result("TIMELINE_HISTORY", format!("bad history line {line:?}"));
        let mut fields = trimmed.splitn(3, ['\t', ' ']);
        let timeline = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
        let switchpoint = fields
            .next()
            .and_then(|f| f.trim().parse().ok())
            .ok_or_else(bad)?;
        let reason = fields.next().unwrap_or("").trim().to_owned();
        entries.push(TimelineHistoryEntry {
            timeline,
            switchpoint,
            reason,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_history_files_like_the_server() {
        let text = "1\t0/3000158\tno recovery target specified\n\n# comment\n2\t0/5000000\tbefore 2026-01-01\n";
        let entries = parse_timeline_history(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].timeline, 1);
        assert_eq!(entries[0].switchpoint, "0/3000158".parse::<Lsn>().unwrap());
        assert_eq!(entries[0].reason, "no recovery target specified");
        assert_eq!(entries[1].switchpoint.to_string(), "0/5000000");
        assert!(parse_timeline_history("x\t0/1\n").is_err());
        assert!(parse_timeline_history("1\tnot-an-lsn\n").is_err());
    }
}
