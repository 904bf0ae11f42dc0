//! The one-line errors the command prints, and its exit codes.

use std::error::Error;
use std::fmt;

/// Exit code: success (including a stop by SIGINT/SIGTERM or at `--endpos`).
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: the work failed (connection, server, decoding or output error).
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code: invalid arguments or an invalid combination of options.
pub(crate) const EXIT_USAGE: u8 = 2;

/// A failure of the command: printed as one line on standard error.
#[derive(Debug)]
pub(crate) struct CliError {
    code: u8,
    message: String,
}

/// The error and its sources joined with `: ` on one line (sources whose text the previous
/// one already contains are left out).
pub(crate) fn chain(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    one_line(&message)
}

/// Collapses line breaks (server DETAIL/HINT lines, clap's layout) into one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl CliError {
    /// Invalid arguments (exit code 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_USAGE,
            message: one_line(&message.into()),
        }
    }

    /// The work failed (exit code 1): `context: error: causes`.
    pub(crate) fn failed(context: impl fmt::Display, error: &dyn Error) -> Self {
        CliError {
            code: EXIT_FAILED,
            message: format!("{context}: {}", chain(error)),
        }
    }

    /// The same error with `; note` appended to its line.
    pub(crate) fn with_note(mut self, note: &str) -> Self {
        self.message.push_str("; ");
        self.message.push_str(note);
        self
    }

    /// The work failed (exit code 1) for a reason given as text.
    pub(crate) fn message(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_FAILED,
            message: one_line(&message.into()),
        }
    }

    /// The reader of the output went away (`| head`): stop quietly with exit code 0, as
    /// Unix filters do.
    pub(crate) fn output_closed() -> Self {
        CliError {
            code: EXIT_OK,
            message: String::new(),
        }
    }

    /// An output write failed: [`output_closed`](Self::output_closed) for a broken pipe,
    /// otherwise a failure.
    pub(crate) fn writing(error: &std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Self::output_closed()
        } else {
            Self::failed("writing the output", error)
        }
    }

    /// Whether there is nothing to print (see [`output_closed`](Self::output_closed)).
    pub(crate) fn is_quiet(&self) -> bool {
        self.message.is_empty()
    }

    /// The exit code.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chains_are_one_line() {
        let error = Outer(std::io::Error::other("inner\nDETAIL: more"));
        assert_eq!(chain(&error), "outer: inner DETAIL: more");
        let failed = CliError::failed("reading x", &error);
        assert_eq!(failed.to_string(), "reading x: outer: inner DETAIL: more");
        assert_eq!(failed.code(), EXIT_FAILED);
        assert_eq!(CliError::usage("bad\n\nthing").code(), EXIT_USAGE);
        assert_eq!(CliError::usage("bad\n\nthing").to_string(), "bad thing");
    }
}
