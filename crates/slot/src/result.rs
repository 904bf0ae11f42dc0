//! Reading typed values out of replication command results.

use core::str::FromStr;

use pg_walstream_transport::{ResultSet, Transport};

use crate::SlotError;

/// Runs `command` and returns its single result set.
pub(crate) async fn one_result_set(
    connection: &mut impl Transport,
    name: &'static str,
    command: &str,
) -> Result<ResultSet, SlotError> {
    let mut sets = connection.simple_query(command).await?;
    match sets.len() {
        1 => Ok(sets.remove(0)),
        n => Err(SlotError::bad_result(
            name,
            format!("{n} result sets instead of one"),
        )),
    }
}

/// A view of one row of a result set with typed column access.
pub(crate) struct RowReader<'a> {
    pub(crate) set: &'a ResultSet,
    pub(crate) row: usize,
    pub(crate) command: &'static str,
}

impl<'a> RowReader<'a> {
    /// The only row of `set`.
    pub(crate) fn single(set: &'a ResultSet, command: &'static str) -> Result<Self, SlotError> {
        match set.rows().len() {
            1 => Ok(RowReader {
                set,
                row: 0,
                command,
            }),
            n => Err(SlotError::bad_result(
                command,
                format!("{n} rows instead of one"),
            )),
        }
    }

    /// The text of column `name`, `None` for NULL.
    pub(crate) fn text(&self, name: &str) -> Result<Option<&'a str>, SlotError> {
        self.set
            .get_str(self.row, name)
            .map_err(|error| SlotError::bad_result(self.command, format!("column {name}: {error}")))
    }

    /// The text of column `name`, which must not be NULL.
    pub(crate) fn required(&self, name: &str) -> Result<&'a str, SlotError> {
        self.text(name)?
            .ok_or_else(|| SlotError::bad_result(self.command, format!("column {name} is NULL")))
    }

    /// Column `name` parsed with `FromStr`; `None` for NULL.
    pub(crate) fn parsed<T: FromStr>(&self, name: &str) -> Result<Option<T>, SlotError> {
        self.text(name)?
            .map(|text| {
                text.parse().map_err(|_| {
                    SlotError::bad_result(
                        self.command,
                        format!("column {name}: cannot parse {text:?}"),
                    )
                })
            })
            .transpose()
    }

    /// Column `name` parsed, which must not be NULL.
    pub(crate) fn required_parsed<T: FromStr>(&self, name: &str) -> Result<T, SlotError> {
        self.parsed(name)?
            .ok_or_else(|| SlotError::bad_result(self.command, format!("column {name} is NULL")))
    }

    /// A boolean column in PostgreSQL's text form (`t`/`f`); `None` for NULL or absent.
    pub(crate) fn boolean(&self, name: &str) -> Result<Option<bool>, SlotError> {
        if self.set.column_index(name).is_none() {
            return Ok(None);
        }
        match self.text(name)? {
            None => Ok(None),
            Some("t") => Ok(Some(true)),
            Some("f") => Ok(Some(false)),
            Some(other) => Err(SlotError::bad_result(
                self.command,
                format!("column {name}: {other:?} is not a boolean"),
            )),
        }
    }

    /// Column `name` when the result has it (version-dependent columns).
    pub(crate) fn optional_text(&self, name: &str) -> Result<Option<&'a str>, SlotError> {
        if self.set.column_index(name).is_none() {
            return Ok(None);
        }
        self.text(name)
    }
}
