//! Writing rendered events: one JSON object per event, one per transaction, or text lines.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde_json::Value;

use crate::spool::Spool;

pub(crate) use crate::destination::Destination;

/// How events are printed (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per event (JSON lines).
    Json,
    /// One JSON object per transaction: `{"kind":"transaction","xid":…,"events":[…],
    /// "end_lsn":…}`; events outside transactions are printed alone.
    JsonlTx,
    /// One human-readable line per event.
    Text,
    /// The undecoded frames, in the raw capture format (`recv` only).
    Raw,
}

/// Writes rendered events in the chosen format.
///
/// `jsonl-tx` writes a transaction's line as its events arrive — `{"kind":"transaction",
/// "xid":…,"events":[…],"end_lsn":…}` — so memory stays flat however large it is (the line is
/// complete, and flushed, at its Commit or Prepare). A *streamed* transaction's blocks
/// interleave with others and may be rolled back in parts, so its events are held, serialized,
/// in a temporary file ([`Spool`]) until its Stream Commit or Stream Prepare.
#[derive(Debug)]
pub(crate) struct EventWriter {
    format: Format,
    /// `jsonl-tx`: a transaction line is open (after Begin / Begin Prepare).
    open: bool,
    /// `jsonl-tx`: the held events of streamed transactions, by xid.
    streamed: HashMap<u64, Spool>,
    /// `jsonl-tx`: the xid of the current streamed block.
    stream_xid: Option<u64>,
    /// `jsonl-tx`: an event's JSON on its way to a spool.
    scratch: Vec<u8>,
}

fn field_u64(value: &Value, key: &str) -> Option<u64> {
    value.get(key).and_then(Value::as_u64)
}

fn kind(value: &Value) -> &str {
    value.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn to_json(out: &mut impl Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer(out, value).map_err(io::Error::other)
}

/// `{"kind":"transaction","xid":N,[ "streamed":true,]"events":[`
fn transaction_head(out: &mut impl Write, xid: Option<u64>, streamed: bool) -> io::Result<()> {
    out.write_all(br#"{"kind":"transaction""#)?;
    if let Some(xid) = xid {
        write!(out, r#","xid":{xid}"#)?;
    }
    if streamed {
        out.write_all(br#","streamed":true"#)?;
    }
    out.write_all(br#","events":["#)
}

/// `,<last event>],"end_lsn":"X/Y"}` and the line's end.
fn transaction_tail(out: &mut impl Write, last: &Value, separator: bool) -> io::Result<()> {
    if separator {
        out.write_all(b",")?;
    }
    to_json(out, last)?;
    out.write_all(b"]")?;
    if let Some(end) = last.get("end_lsn") {
        out.write_all(br#","end_lsn":"#)?;
        to_json(out, end)?;
    }
    out.write_all(b"}\n")
}

impl EventWriter {
    /// A writer for `format` (not [`Format::Raw`], which `recv` writes itself).
    pub(crate) fn new(format: Format) -> Self {
        EventWriter {
            format,
            open: false,
            streamed: HashMap::new(),
            stream_xid: None,
            scratch: Vec::new(),
        }
    }

    /// Writes (or, for a streamed transaction in `jsonl-tx`, holds) one event.
    ///
    /// # Errors
    /// Write failures.
    pub(crate) fn write(&mut self, out: &mut impl Write, event: &Value) -> io::Result<()> {
        match self.format {
            Format::Json | Format::Raw => write_json_line(out, event),
            Format::Text => {
                let mut line = text_line(event);
                line.push('\n');
                out.write_all(line.as_bytes())
            }
            Format::JsonlTx => self.group(out, event),
        }
    }

    fn group(&mut self, out: &mut impl Write, event: &Value) -> io::Result<()> {
        match kind(event) {
            "begin" | "begin_prepare" => {
                transaction_head(out, field_u64(event, "xid"), false)?;
                to_json(out, event)?;
                self.open = true;
                Ok(())
            }
            "commit" | "prepare" if self.open => {
                self.open = false;
                transaction_tail(out, event, true)
            }
            "stream_start" => {
                let xid = field_u64(event, "xid");
                self.stream_xid = xid;
                if let Some(xid) = xid {
                    // A first segment for a known xid: the stream was sent again from its
                    // start (a capture continued after a restart); what was held is void.
                    let again = event.get("first_segment") == Some(&Value::Bool(true));
                    if again || !self.streamed.contains_key(&xid) {
                        self.streamed.insert(xid, Spool::new()?);
                    }
                }
                Ok(())
            }
            "stream_stop" => {
                self.stream_xid = None;
                Ok(())
            }
            "stream_commit" | "stream_prepare" => {
                let xid = field_u64(event, "xid");
                transaction_head(out, xid, true)?;
                let held = match xid.and_then(|x| self.streamed.remove(&x)) {
                    Some(spool) => spool.replay(out)?,
                    None => 0,
                };
                transaction_tail(out, event, held > 0)
            }
            "stream_abort" => {
                let (xid, subxid) = (field_u64(event, "xid"), field_u64(event, "subxid"));
                if xid == subxid {
                    if let Some(xid) = xid {
                        self.streamed.remove(&xid);
                    }
                } else if let (Some(spool), Some(subxid)) =
                    (xid.and_then(|x| self.streamed.get_mut(&x)), subxid)
                {
                    spool.abort_subtransaction(subxid);
                }
                Ok(())
            }
            _ => {
                if self.open {
                    out.write_all(b",")?;
                    to_json(out, event)
                } else if let Some(spool) = self.stream_xid.and_then(|x| self.streamed.get_mut(&x))
                {
                    self.scratch.clear();
                    to_json(&mut self.scratch, event)?;
                    spool.push(field_u64(event, "xid"), &self.scratch)
                } else {
                    write_json_line(out, event)
                }
            }
        }
    }
}

fn write_json_line(out: &mut impl Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// A column as `name[type]=value` (`NULL`, `<unchanged toast>`, `'text'`, `\x…` for hex).
fn text_column(column: &Value) -> String {
    let name = column.get("name").and_then(Value::as_str).unwrap_or("?");
    let type_name = column.get("type").and_then(Value::as_str).map_or_else(
        || field_u64(column, "type_oid").unwrap_or(0).to_string(),
        str::to_owned,
    );
    let value = if let Some(text) = column.get("text").and_then(Value::as_str) {
        format!("'{}'", text.replace('\'', "''"))
    } else if let Some(hex) = column.get("text_hex").and_then(Value::as_str) {
        format!("\\x{hex}")
    } else if let Some(hex) = column.get("binary_hex").and_then(Value::as_str) {
        format!("binary:\\x{hex}")
    } else if column.get("unchanged_toast").is_some() {
        "<unchanged toast>".to_owned()
    } else {
        "NULL".to_owned()
    };
    format!("{name}[{type_name}]={value}")
}

/// One line: the kind in capitals, then `key=value` for scalar fields and the tuples'
/// columns, e.g. `INSERT public.t: new: id[int4]='1' v[text]='x'`.
pub(crate) fn text_line(event: &Value) -> String {
    let mut line = kind(event).to_ascii_uppercase();
    let Some(map) = event.as_object() else {
        return line;
    };
    if let (Some(schema), Some(table)) = (
        map.get("schema").and_then(Value::as_str),
        map.get("table").and_then(Value::as_str),
    ) {
        let _ = write!(line, " {schema}.{table}:");
    }
    for (key, value) in map {
        match (key.as_str(), value) {
            ("kind" | "schema" | "table", _) => {}
            ("old" | "old_key" | "new", Value::Array(columns)) => {
                let _ = write!(line, " {key}:");
                for column in columns {
                    line.push(' ');
                    line.push_str(&text_column(column));
                }
            }
            ("columns", Value::Array(columns)) => {
                let names: Vec<String> = columns
                    .iter()
                    .map(|c| {
                        let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
                        let ty = c.get("type").and_then(Value::as_str).unwrap_or("?");
                        format!("{name}[{ty}]")
                    })
                    .collect();
                let _ = write!(line, " columns=({})", names.join(" "));
            }
            ("relations", Value::Array(relations)) => {
                let names: Vec<String> = relations
                    .iter()
                    .map(|r| {
                        format!(
                            "{}.{}",
                            r.get("schema").and_then(Value::as_str).unwrap_or("?"),
                            r.get("table").and_then(Value::as_str).unwrap_or("?")
                        )
                    })
                    .collect();
                let _ = write!(line, " relations=({})", names.join(" "));
            }
            (_, Value::String(s)) => {
                let _ = write!(line, " {key}={s}");
            }
            (_, other) => {
                let _ = write!(line, " {key}={other}");
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(format: Format, events: Vec<Value>) -> Vec<Value> {
        let mut writer = EventWriter::new(format);
        let mut out = Vec::new();
        for e in events {
            writer.write(&mut out, &e).unwrap();
        }
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn jsonl_tx_groups_transactions_and_drops_aborted_subtransactions() {
        let events = vec![
            json!({"kind":"message","transactional":false,"prefix":"p"}),
            json!({"kind":"begin","xid":7}),
            json!({"kind":"insert","table":"t"}),
            json!({"kind":"commit","end_lsn":"0/10"}),
            json!({"kind":"stream_start","xid":9,"first_segment":true}),
            json!({"kind":"insert","xid":9,"table":"a"}),
            json!({"kind":"insert","xid":10,"table":"b"}),
            json!({"kind":"stream_stop"}),
            json!({"kind":"stream_abort","xid":9,"subxid":10}),
            json!({"kind":"stream_start","xid":11,"first_segment":true}),
            json!({"kind":"insert","xid":11,"table":"c"}),
            json!({"kind":"stream_stop"}),
            json!({"kind":"stream_abort","xid":11,"subxid":11}),
            json!({"kind":"stream_commit","xid":9,"end_lsn":"0/20"}),
        ];
        let lines = run(Format::JsonlTx, events);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0]["kind"], "message");
        assert_eq!(lines[1]["kind"], "transaction");
        assert_eq!(lines[1]["xid"], 7);
        assert_eq!(lines[1]["end_lsn"], "0/10");
        assert_eq!(lines[1]["events"].as_array().unwrap().len(), 3);
        assert_eq!(lines[2]["streamed"], true);
        let tables: Vec<&str> = lines[2]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e.get("table").and_then(Value::as_str))
            .collect();
        assert_eq!(tables, ["a"], "subtransaction 10 was rolled back");
    }

    #[test]
    fn text_lines_show_every_column_state() {
        let event = json!({"kind":"update","schema":"public","table":"t",
            "new":[{"name":"id","type_oid":23,"type":"int4","text":"1"},
                   {"name":"big","type_oid":25,"type":"text","unchanged_toast":true},
                   {"name":"n","type_oid":25,"type":"text","null":true},
                   {"name":"b","type_oid":17,"type":"bytea","binary_hex":"00ff"}]});
        assert_eq!(
            text_line(&event),
            "UPDATE public.t: new: id[int4]='1' big[text]=<unchanged toast> n[text]=NULL \
             b[bytea]=binary:\\x00ff"
        );
    }
}
