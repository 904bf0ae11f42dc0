//! Workloads: tables, publications and the SQL that writes each scenario's rows.
//!
//! Rows are generated on the server (`generate_series`) so the writer costs no client CPU;
//! each transaction commits inside a `DO` loop. Payload columns use `STORAGE PLAIN` so values
//! are neither compressed nor moved to TOAST: the walsender sends exactly what was written.

/// How the rows of a scenario are shaped and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `(id bigint, payload text)` inserts.
    Narrow {
        /// Payload length in bytes.
        payload: usize,
    },
    /// 20 columns of mixed types (about a tenth NULL).
    Wide,
    /// Per transaction: half inserts, a quarter updates, a quarter deletes.
    Mixed,
}

/// One benchmark scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    /// Name used in tables and on the command line.
    pub(crate) name: &'static str,
    /// Row shape.
    pub(crate) shape: Shape,
    /// DML events per transaction.
    pub(crate) batch: u64,
    /// Concurrent writer sessions.
    pub(crate) writers: u64,
    /// Divisor of `--rows`: the scenario writes `rows / scale` DML events.
    pub(crate) scale: u64,
    /// Consumers connect over the server's unix-domain socket instead of TCP.
    pub(crate) unix: bool,
}

/// Every scenario, in report order.
pub(crate) const SCENARIOS: [Scenario; 8] = [
    Scenario {
        name: "Baseline",
        shape: Shape::Narrow { payload: 100 },
        batch: 8_000,
        writers: 1,
        scale: 1,
        unix: false,
    },
    Scenario {
        name: "Batch-100",
        shape: Shape::Narrow { payload: 100 },
        batch: 100,
        writers: 1,
        scale: 1,
        unix: false,
    },
    Scenario {
        name: "Batch-5000",
        shape: Shape::Narrow { payload: 100 },
        batch: 5_000,
        writers: 1,
        scale: 1,
        unix: false,
    },
    Scenario {
        name: "4-Writers",
        shape: Shape::Narrow { payload: 100 },
        batch: 8_000,
        writers: 4,
        scale: 1,
        unix: false,
    },
    Scenario {
        name: "Wide-20col",
        shape: Shape::Wide,
        batch: 8_000,
        writers: 1,
        scale: 5,
        unix: false,
    },
    Scenario {
        name: "Payload-2KB",
        shape: Shape::Narrow { payload: 2_000 },
        batch: 8_000,
        writers: 1,
        scale: 10,
        unix: false,
    },
    Scenario {
        name: "Mixed-DML",
        shape: Shape::Mixed,
        batch: 8_000,
        writers: 1,
        scale: 1,
        unix: false,
    },
    // Baseline again, over the unix-domain socket: what TCP's loopback costs both sides.
    Scenario {
        name: "Baseline-unix",
        shape: Shape::Narrow { payload: 100 },
        batch: 8_000,
        writers: 1,
        scale: 1,
        unix: true,
    },
];

/// The table every scenario writes to.
pub(crate) const TABLE: &str = "bench_rows";
/// The publication of [`TABLE`].
pub(crate) const PUBLICATION: &str = "bench_pub";

/// Column definitions and value expressions (over `g`, the row id) of the wide table.
const WIDE_COLUMNS: [(&str, &str); 19] = [
    ("c01 int4", "(g % 100000)::int4"),
    ("c02 int8", "g * 7"),
    ("c03 text", "md5(g::text)"),
    ("c04 numeric", "(g / 3.0)::numeric(18,6)"),
    ("c05 timestamptz", "now()"),
    ("c06 bool", "g % 2 = 0"),
    ("c07 float8", "g * 1.5"),
    ("c08 text", "'name_' || g"),
    ("c09 int2", "(g % 1000)::int2"),
    ("c10 date", "current_date"),
    ("c11 uuid", "md5(g::text)::uuid"),
    ("c12 jsonb", "jsonb_build_object('k', g, 'tag', 'bench')"),
    (
        "c13 text",
        "CASE WHEN g % 10 = 0 THEN NULL ELSE substr(md5(g::text), 1, 12) END",
    ),
    ("c14 float4", "(g % 977)::float4 / 7"),
    ("c15 bytea", "decode(md5(g::text), 'hex')"),
    ("c16 interval", "make_interval(secs => g % 3600)"),
    (
        "c17 text",
        "CASE WHEN g % 7 = 0 THEN NULL ELSE 'status-' || (g % 5) END",
    ),
    ("c18 int8", "g * g % 1000003"),
    ("c19 timestamp", "localtimestamp"),
];

impl Scenario {
    /// DML events this scenario writes for `--rows rows`.
    pub(crate) fn events(&self, rows: u64) -> u64 {
        let per_writer = (rows / self.scale / self.writers).max(self.batch);
        let batches = per_writer.div_ceil(self.batch);
        batches * self.batch * self.writers
    }

    /// The table and its publication.
    pub(crate) fn ddl(&self) -> String {
        let columns = match self.shape {
            Shape::Narrow { .. } | Shape::Mixed => {
                "id bigint PRIMARY KEY, payload text NOT NULL".to_owned()
            }
            Shape::Wide => {
                let rest: Vec<&str> = WIDE_COLUMNS.iter().map(|(def, _)| *def).collect();
                format!("id bigint PRIMARY KEY, {}", rest.join(", "))
            }
        };
        // `STORAGE` in a column definition needs PostgreSQL 16; ALTER works on every version.
        let plain = match self.shape {
            Shape::Narrow { .. } | Shape::Mixed => {
                format!(" ALTER TABLE {TABLE} ALTER COLUMN payload SET STORAGE PLAIN;")
            }
            Shape::Wide => String::new(),
        };
        format!(
            "CREATE TABLE {TABLE} ({columns});{plain} \
             CREATE PUBLICATION {PUBLICATION} FOR TABLE {TABLE};"
        )
    }

    /// The SQL statements writer `writer` (0-based) runs, in order: `events / writers` DML events in transactions
    /// of `batch` events, each committed. Ids of different writers never overlap.
    pub(crate) fn writer_sql(&self, rows: u64, writer: u64, pause_ms: u64) -> [String; 2] {
        let per_writer = self.events(rows) / self.writers;
        let batches = per_writer / self.batch;
        let b = self.batch;
        let base = writer * per_writer;
        let body = match self.shape {
            Shape::Narrow { payload } => format!(
                "INSERT INTO {TABLE} SELECT g, {} FROM generate_series(lo, lo + {b} - 1) g;",
                payload_expr(payload)
            ),
            Shape::Wide => {
                let exprs: Vec<&str> = WIDE_COLUMNS.iter().map(|(_, e)| *e).collect();
                format!(
                    "INSERT INTO {TABLE} SELECT g, {} FROM generate_series(lo, lo + {b} - 1) g;",
                    exprs.join(", ")
                )
            }
            Shape::Mixed => {
                let half = b / 2;
                let quarter = b / 4;
                let rest = b - half - quarter;
                format!(
                    "INSERT INTO {TABLE} SELECT g, {payload} FROM generate_series(lo, lo + {half} - 1) g; \
                     UPDATE {TABLE} SET payload = upper(payload) WHERE id BETWEEN lo AND lo + {quarter} - 1; \
                     DELETE FROM {TABLE} WHERE id BETWEEN lo + {quarter} AND lo + {quarter} + {rest} - 1;",
                    payload = payload_expr(100)
                )
            }
        };
        let pause = if pause_ms > 0 {
            format!("PERFORM pg_sleep({});", pause_ms as f64 / 1000.0)
        } else {
            String::new()
        };
        let sync = if pause_ms > 0 { "on" } else { "off" };
        // Two statements: a DO block may COMMIT only outside a multi-statement query.
        [
            format!("SET synchronous_commit = {sync}"),
            format!(
                "DO $bench$ DECLARE lo bigint; BEGIN \
                   FOR i IN 0..{last} LOOP \
                     lo := {base} + i * {b}; {body} COMMIT; {pause} \
                   END LOOP; \
                 END $bench$",
                last = batches.saturating_sub(1),
            ),
        ]
    }
}

/// A deterministic text payload of `len` bytes for row `g`.
fn payload_expr(len: usize) -> String {
    let repeats = len / 32 + 1;
    format!("substr(repeat(md5(g::text), {repeats}), 1, {len})")
}

/// Scenarios named in `names` (case-insensitive), in report order; all when empty.
///
/// # Errors
/// A name that is not a scenario.
pub(crate) fn select(names: &[String]) -> Result<Vec<Scenario>, String> {
    if names.is_empty() {
        return Ok(SCENARIOS.to_vec());
    }
    for name in names {
        if !SCENARIOS.iter().any(|s| s.name.eq_ignore_ascii_case(name)) {
            let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
            return Err(format!(
                "unknown scenario {name:?}; known: {}",
                known.join(", ")
            ));
        }
    }
    Ok(SCENARIOS
        .iter()
        .filter(|s| names.iter().any(|n| s.name.eq_ignore_ascii_case(n)))
        .copied()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_whole_batches_per_writer() {
        let baseline = SCENARIOS[0];
        assert_eq!(baseline.events(1_000_000), 1_000_000);
        assert_eq!(baseline.events(20_000), 24_000);
        let four = SCENARIOS[3];
        assert_eq!(four.events(1_000_000), 4 * 256_000);
        let wide = SCENARIOS[4];
        assert_eq!(wide.events(1_000_000), 200_000);
    }

    #[test]
    fn writers_cover_disjoint_id_ranges() {
        let four = SCENARIOS[3];
        let [set, first] = four.writer_sql(1_000_000, 0, 0);
        assert_eq!(set, "SET synchronous_commit = off");
        assert!(first.contains("lo := 0 + i * 8000"), "{first}");
        assert!(first.contains("FOR i IN 0..31 LOOP"), "{first}");
        let [_, second] = four.writer_sql(1_000_000, 1, 0);
        assert!(second.contains("lo := 256000 + i * 8000"), "{second}");
        let [live, _] = four.writer_sql(1_000_000, 1, 2);
        assert_eq!(live, "SET synchronous_commit = on");
    }

    #[test]
    fn select_rejects_unknown_names() {
        assert_eq!(
            select(&["wide-20COL".into()]).unwrap()[0].name,
            "Wide-20col"
        );
        assert!(select(&["nope".into()]).is_err());
        let unix = select(&["baseline-unix".into()]).unwrap();
        assert!(unix[0].unix && !SCENARIOS[0].unix);
        assert_eq!(unix[0].events(1_000_000), SCENARIOS[0].events(1_000_000));
    }
}
