//! Figures: medians with min–max over runs, pairwise ratios, the markdown table and JSON.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::consumer::{Consumer, Sample};

/// All runs of one consumer on one scenario and format.
#[derive(Debug, Clone)]
pub(crate) struct Cell {
    /// Scenario name.
    pub(crate) scenario: String,
    /// `text` or `binary`.
    pub(crate) format: String,
    /// The consumer.
    pub(crate) consumer: Consumer,
    /// DML events the workload wrote.
    pub(crate) events: u64,
    /// One sample per successful run, by run index (`None`: that run failed).
    pub(crate) samples: Vec<Option<Sample>>,
    /// Why runs failed.
    pub(crate) errors: Vec<String>,
}

/// Median, minimum and maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spread {
    /// Median (mean of the middle two for an even count).
    pub(crate) median: f64,
    /// Smallest.
    pub(crate) min: f64,
    /// Largest.
    pub(crate) max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when empty.
    pub(crate) fn of(values: &[f64]) -> Option<Spread> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }

    fn show(self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }

    fn to_json(self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max })
    }
}

/// A per-sample metric.
type Metric = fn(&Sample, u64) -> Option<f64>;

#[allow(clippy::unnecessary_wraps)] // every metric has the same signature
fn wall(s: &Sample, _: u64) -> Option<f64> {
    Some(s.wall_s)
}
fn rate(s: &Sample, events: u64) -> Option<f64> {
    (s.wall_s > 0.0).then(|| events as f64 / s.wall_s)
}
fn cpu_per_million(s: &Sample, events: u64) -> Option<f64> {
    (events > 0).then(|| s.cpu_s() * 1e6 / events as f64)
}
#[allow(clippy::unnecessary_wraps)] // every metric has the same signature
fn rss_mb(s: &Sample, _: u64) -> Option<f64> {
    Some(s.maxrss_kb / 1024.0)
}
fn walsender(s: &Sample, _: u64) -> Option<f64> {
    s.walsender_cpu_s
}
fn walsender_per_million(s: &Sample, events: u64) -> Option<f64> {
    (events > 0).then(|| s.walsender_cpu_s.map(|cpu| cpu * 1e6 / events as f64))?
}
fn per_thousand(count: f64, events: u64) -> Option<f64> {
    (events > 0).then(|| count * 1000.0 / events as f64)
}
fn voluntary_per_k(s: &Sample, events: u64) -> Option<f64> {
    per_thousand(s.nvcsw, events)
}
fn involuntary_per_k(s: &Sample, events: u64) -> Option<f64> {
    per_thousand(s.nivcsw, events)
}
fn syscalls_per_k(s: &Sample, events: u64) -> Option<f64> {
    per_thousand(s.syscalls?, events)
}
fn walsender_voluntary_per_k(s: &Sample, events: u64) -> Option<f64> {
    per_thousand(s.walsender_switches?.0, events)
}
fn walsender_involuntary_per_k(s: &Sample, events: u64) -> Option<f64> {
    per_thousand(s.walsender_switches?.1, events)
}
fn p50_ms(s: &Sample, _: u64) -> Option<f64> {
    s.reported("latency_p50_us").map(|us| us / 1000.0)
}
fn p99_ms(s: &Sample, _: u64) -> Option<f64> {
    s.reported("latency_p99_us").map(|us| us / 1000.0)
}

impl Cell {
    fn spread(&self, metric: Metric) -> Option<Spread> {
        let values: Vec<f64> = self
            .samples
            .iter()
            .flatten()
            .filter_map(|s| metric(s, self.events))
            .collect();
        Spread::of(&values)
    }

    fn show(&self, metric: Metric, decimals: usize) -> String {
        self.spread(metric)
            .map_or_else(|| "–".to_owned(), |s| s.show(decimals))
    }

    /// The medians of two metrics, `a / b` (e.g. voluntary / involuntary switches).
    fn show_pair(&self, a: Metric, b: Metric, decimals: usize) -> String {
        match (self.spread(a), self.spread(b)) {
            (Some(a), Some(b)) => format!("{:.d$} / {:.d$}", a.median, b.median, d = decimals),
            _ => "–".to_owned(),
        }
    }
}

/// Ratio `ours / other` of `metric`, computed run by run (same run index), then spread.
fn paired(ours: &Cell, other: &Cell, metric: Metric) -> Option<Spread> {
    let ratios: Vec<f64> = ours
        .samples
        .iter()
        .zip(&other.samples)
        .filter_map(|(a, b)| {
            let a = metric(a.as_ref()?, ours.events)?;
            let b = metric(b.as_ref()?, other.events)?;
            (b > 0.0).then(|| a / b)
        })
        .collect();
    Spread::of(&ratios)
}

fn find<'a>(cells: &'a [Cell], like: &Cell, consumer: Consumer) -> Option<&'a Cell> {
    cells
        .iter()
        .find(|c| c.scenario == like.scenario && c.format == like.format && c.consumer == consumer)
}

/// The markdown tables of a batch (pre-generated) run.
pub(crate) fn markdown(cells: &[Cell]) -> String {
    let mut out = String::new();
    out.push_str(
        "| Scenario | Format | Consumer | DML events | Wall s | DML events/s | CPU s / M DML | \
         Peak RSS MB | Walsender CPU s | Walsender CPU s / M DML | Ctx switches / 1k DML \
         (vol / invol) | Syscalls / 1k DML | Walsender ctx switches / 1k DML (vol / invol) |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for cell in cells {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |{}",
            cell.scenario,
            cell.format,
            cell.consumer.name(),
            cell.events,
            cell.show(wall, 2),
            cell.show(rate, 0),
            cell.show(cpu_per_million, 2),
            cell.show(rss_mb, 1),
            cell.show(walsender, 2),
            cell.show(walsender_per_million, 2),
            cell.show_pair(voluntary_per_k, involuntary_per_k, 2),
            cell.show(syscalls_per_k, 1),
            cell.show_pair(walsender_voluntary_per_k, walsender_involuntary_per_k, 2),
            failures(cell)
        );
    }
    out.push_str(
        "\nRatios, run by run (median (min–max); CPU < 1 and throughput > 1 favour ours):\n\n\
         | Scenario | Format | Ours | CPU/M ours÷upstream | CPU/M ours÷pg_recvlogical | \
         Throughput ours÷upstream | Throughput ours÷pg_recvlogical | RSS ours÷upstream | \
         Walsender CPU/M ours÷upstream | Walsender CPU/M ours÷pg_recvlogical |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for ours in cells.iter().filter(|c| c.consumer.is_ours()) {
        let upstream = find(cells, ours, Consumer::Upstream);
        let recv = find(cells, ours, Consumer::PgRecvlogical);
        let show = |other: Option<&Cell>, metric: Metric| {
            other
                .and_then(|o| paired(ours, o, metric))
                .map_or_else(|| "–".to_owned(), |s| s.show(2))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            ours.scenario,
            ours.format,
            ours.consumer.name(),
            show(upstream, cpu_per_million),
            show(recv, cpu_per_million),
            show(upstream, rate),
            show(recv, rate),
            show(upstream, rss_mb),
            show(upstream, walsender_per_million),
            show(recv, walsender_per_million),
        );
    }
    out
}

/// The markdown table of a live run.
pub(crate) fn live_markdown(cells: &[Cell]) -> String {
    let mut out = String::from(
        "| Scenario | Consumer | DML events | Wall s | CPU s / M DML | Peak RSS MB | \
         Walsender CPU s | Commit→receive p50 ms | p99 ms |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for cell in cells {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |{}",
            cell.scenario,
            cell.consumer.name(),
            cell.events,
            cell.show(wall, 2),
            cell.show(cpu_per_million, 2),
            cell.show(rss_mb, 1),
            cell.show(walsender, 2),
            cell.show(p50_ms, 2),
            cell.show(p99_ms, 2),
            failures(cell)
        );
    }
    out
}

fn failures(cell: &Cell) -> String {
    if cell.errors.is_empty() {
        String::new()
    } else {
        format!(" failed runs: {}", cell.errors.join("; "))
    }
}

/// Every figure as JSON (`meta` is merged in at the top level).
pub(crate) fn to_json(cells: &[Cell], meta: Value) -> Value {
    let entries: Vec<Value> = cells
        .iter()
        .map(|cell| {
            let spread = |m: Metric| cell.spread(m).map(Spread::to_json);
            let runs: Vec<Value> = cell
                .samples
                .iter()
                .map(|s| {
                    s.as_ref().map_or(Value::Null, |s| {
                        json!({
                            "wall_s": s.wall_s, "user_s": s.user_s, "sys_s": s.sys_s,
                            "maxrss_kb": s.maxrss_kb, "voluntary_context_switches": s.nvcsw,
                            "involuntary_context_switches": s.nivcsw, "syscalls": s.syscalls,
                            "walsender_cpu_s": s.walsender_cpu_s,
                            "walsender_context_switches": s.walsender_switches
                                .map(|(v, i)| json!({"voluntary": v, "involuntary": i})),
                            "load_1m": s.load_1m,
                            "consumer": s.report,
                        })
                    })
                })
                .collect();
            let mut value = json!({
                "scenario": cell.scenario,
                "format": cell.format,
                "consumer": cell.consumer.name(),
                "dml_events": cell.events,
                "wall_s": spread(wall),
                "dml_events_per_s": spread(rate),
                "cpu_s_per_million_dml": spread(cpu_per_million),
                "peak_rss_mb": spread(rss_mb),
                "walsender_cpu_s": spread(walsender),
                "walsender_cpu_s_per_million_dml": spread(walsender_per_million),
                "voluntary_context_switches_per_1k_dml": spread(voluntary_per_k),
                "involuntary_context_switches_per_1k_dml": spread(involuntary_per_k),
                "syscalls_per_1k_dml": spread(syscalls_per_k),
                "walsender_voluntary_context_switches_per_1k_dml": spread(walsender_voluntary_per_k),
                "walsender_involuntary_context_switches_per_1k_dml": spread(walsender_involuntary_per_k),
                "latency_p50_ms": spread(p50_ms),
                "latency_p99_ms": spread(p99_ms),
                "errors": cell.errors,
                "runs": runs,
            });
            if cell.consumer.is_ours() {
                let mut ratios = serde_json::Map::new();
                for other in [Consumer::Upstream, Consumer::PgRecvlogical] {
                    let Some(o) = find(cells, cell, other) else {
                        continue;
                    };
                    let ratio = |m: Metric| paired(cell, o, m).map(Spread::to_json);
                    ratios.insert(
                        other.name().to_owned(),
                        json!({
                            "cpu_per_million_dml": ratio(cpu_per_million),
                            "throughput": ratio(rate),
                            "peak_rss": ratio(rss_mb),
                            "walsender_cpu_per_million_dml": ratio(walsender_per_million),
                        }),
                    );
                }
                value["ratios_ours_over"] = Value::Object(ratios);
            }
            value
        })
        .collect();
    let mut out = meta;
    out["cells"] = Value::Array(entries);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert!((s.median - 2.5).abs() < 1e-9);
        assert!(Spread::of(&[]).is_none());
    }

    fn cell(consumer: Consumer, walls: &[f64], cpus: &[f64]) -> Cell {
        Cell {
            scenario: "S".into(),
            format: "text".into(),
            consumer,
            events: 1_000_000,
            samples: walls
                .iter()
                .zip(cpus)
                .map(|(&wall_s, &user_s)| {
                    Some(Sample {
                        wall_s,
                        user_s,
                        ..Sample::default()
                    })
                })
                .collect(),
            errors: Vec::new(),
        }
    }

    #[test]
    fn ratios_pair_runs_by_index() {
        let ours = cell(Consumer::OursNative, &[10.0, 20.0], &[1.0, 1.0]);
        let up = cell(Consumer::Upstream, &[20.0, 20.0], &[4.0, 2.0]);
        let cpu = paired(&ours, &up, cpu_per_million).unwrap();
        assert_eq!((cpu.min, cpu.max), (0.25, 0.5));
        let thr = paired(&ours, &up, rate).unwrap();
        assert_eq!((thr.min, thr.max), (1.0, 2.0));
        let table = markdown(&[ours, up]);
        assert!(
            table.contains("| S | text | ours-native | 0.38 (0.25–0.50) |"),
            "{table}"
        );
    }

    fn close(spread: Option<Spread>, expected: f64) {
        let median = spread.expect("a figure").median;
        assert!((median - expected).abs() < 1e-9, "{median} != {expected}");
    }

    #[test]
    fn per_event_figures_scale_by_events() {
        let mut ours = cell(Consumer::OursNative, &[10.0], &[1.0]);
        let sample = ours.samples[0].as_mut().unwrap();
        sample.nvcsw = 500.0;
        sample.nivcsw = 20.0;
        sample.syscalls = Some(3_000.0);
        sample.walsender_cpu_s = Some(4.0);
        sample.walsender_switches = Some((1_000.0, 10.0));
        let mut up = cell(Consumer::Upstream, &[10.0], &[2.0]);
        up.samples[0].as_mut().unwrap().walsender_cpu_s = Some(2.0);
        // 1,000,000 events: 500 switches are 0.5 per 1,000; 4 s of walsender is 4 s per M.
        close(ours.spread(voluntary_per_k), 0.5);
        close(ours.spread(syscalls_per_k), 3.0);
        close(ours.spread(walsender_per_million), 4.0);
        assert_eq!(
            ours.show_pair(walsender_voluntary_per_k, walsender_involuntary_per_k, 2),
            "1.00 / 0.01"
        );
        assert!(
            up.spread(syscalls_per_k).is_none(),
            "no strace, no syscall figure"
        );
        close(paired(&ours, &up, walsender_per_million), 2.0);
        let table = markdown(&[ours, up]);
        assert!(
            table.contains("| 0.50 / 0.02 | 3.0 (3.0–3.0) | 1.00 / 0.01 |"),
            "{table}"
        );
        assert!(table.contains("| 2.00 (2.00–2.00) | – |"), "{table}");
    }
}
