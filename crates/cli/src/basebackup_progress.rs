//! `basebackup -P`: an indicatif bar on a terminal, plain lines otherwise.

use std::io::Write as _;
use std::time::{Duration, Instant};

use pg_walstream_backup::Progress;

/// Shows progress on standard error: an indicatif bar on a terminal, otherwise a plain line
/// at most once a second (and the last one).
pub(crate) enum ProgressPrinter {
    Bar(indicatif::ProgressBar),
    Lines {
        last: Option<Instant>,
        latest: Option<Progress>,
    },
}

/// The bar's layout: bytes done of the estimate, percentage, rate and time left.
const BAR_TEMPLATE: &str =
    "{bar:40} {binary_bytes}/{binary_total_bytes} ({percent}%) {binary_bytes_per_sec}, {eta} left";

impl ProgressPrinter {
    pub(crate) fn new(terminal: bool) -> Self {
        if !terminal {
            return Self::Lines {
                last: None,
                latest: None,
            };
        }
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template(BAR_TEMPLATE)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Self::Bar(bar)
    }

    pub(crate) fn show(&mut self, progress: Progress) {
        match self {
            Self::Bar(bar) => {
                if let Some(total) = progress.total {
                    bar.set_length(total);
                }
                bar.set_position(progress.done);
            }
            Self::Lines { last, latest } => {
                *latest = Some(progress);
                if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                    return;
                }
                *last = Some(Instant::now());
                print_line(progress);
            }
        }
    }

    /// The last report: the bar left complete, or the last line.
    pub(crate) fn finish(&mut self) {
        match self {
            Self::Bar(bar) => bar.finish(),
            Self::Lines { latest, .. } => {
                if let Some(progress) = latest.take() {
                    print_line(progress);
                }
            }
        }
    }
}

/// `1234/5678 kB (21%)`, or `1234 kB` without an estimate.
fn print_line(progress: Progress) {
    let done = progress.done / 1024;
    let line = match progress.total {
        Some(total) if total > 0 => {
            format!(
                "{done}/{} kB ({}%)",
                total / 1024,
                progress.done * 100 / total
            )
        }
        _ => format!("{done} kB"),
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
