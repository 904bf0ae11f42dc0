//! Results of the simple query protocol, shared by every backend.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Result, TransportError};

/// One result set of a simple query: column names, rows of text values, and the command tag.
///
/// Commands that return no rows (e.g. `CREATE_REPLICATION_SLOT ... ` with no result, `SET`)
/// have no columns and no rows, only a tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultSet {
    columns: Arc<[String]>,
    rows: Vec<Row>,
    command_tag: String,
}

/// One row: text-format values, `None` for SQL NULL. Values share the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    values: Vec<Option<Bytes>>,
}

/// What the server sent next in response to a query (see `next_response`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// A complete result set (possibly without columns: a command's tag only).
    ResultSet(ResultSet),
    /// A CopyOut stream follows (e.g. BASE_BACKUP): read it with `read_copy_data`.
    CopyOut,
    /// A CopyBoth stream follows (START_REPLICATION): read and write CopyData.
    CopyBoth,
    /// The server waits for CopyData from the client (`UPLOAD_MANIFEST`, `COPY ... FROM
    /// STDIN`): write it with `write_copy_data`, end it with `send_copy_done`, then read the
    /// command's result with `next_response`.
    CopyIn,
    /// The query finished; the connection is ready for the next one.
    Ready,
}

impl ResultSet {
    pub(crate) fn new(columns: Arc<[String]>, rows: Vec<Row>, command_tag: String) -> Self {
        ResultSet {
            columns,
            rows,
            command_tag,
        }
    }

    /// Column names in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Index of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The command tag, e.g. `SELECT 1` or `IDENTIFY_SYSTEM` (empty when the server sent none).
    pub fn command_tag(&self) -> &str {
        &self.command_tag
    }

    /// The value of column `name` in row `row` as text.
    ///
    /// # Errors
    /// [`TransportError::Column`] when the row or column does not exist or the value is not
    /// UTF-8.
    pub fn get_str(&self, row: usize, name: &str) -> Result<Option<&str>> {
        let index = self.column_index(name).ok_or(TransportError::Column {
            index: usize::MAX,
            what: "no column of that name",
        })?;
        self.rows
            .get(row)
            .ok_or(TransportError::Column {
                index,
                what: "row index out of range",
            })?
            .get_str(index)
    }
}

impl Row {
    pub(crate) fn new(values: Vec<Option<Bytes>>) -> Self {
        Row { values }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The raw text bytes of column `index` (`None` for NULL or out of range).
    pub fn get(&self, index: usize) -> Option<&Bytes> {
        self.values.get(index).and_then(Option::as_ref)
    }

    /// All values.
    pub fn values(&self) -> &[Option<Bytes>] {
        &self.values
    }

    /// Column `index` as UTF-8 text (`None` for NULL).
    ///
    /// # Errors
    /// [`TransportError::Column`] when `index` is out of range or the value is not UTF-8.
    pub fn get_str(&self, index: usize) -> Result<Option<&str>> {
        match self.values.get(index) {
            None => Err(TransportError::Column {
                index,
                what: "index out of range",
            }),
            Some(None) => Ok(None),
            Some(Some(b)) => {
                core::str::from_utf8(b)
                    .map(Some)
                    .map_err(|_| TransportError::Column {
                        index,
                        what: "value is not UTF-8",
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let rs = ResultSet::new(
            Arc::from(vec!["a".to_owned(), "b".to_owned()]),
            vec![
                Row::new(vec![Some(Bytes::from_static(b"1")), None]),
                Row::new(vec![Some(Bytes::from_static(b"\xff")), None]),
            ],
            "SELECT 2".into(),
        );
        assert_eq!(rs.columns(), ["a", "b"]);
        assert_eq!(rs.get_str(0, "a").unwrap(), Some("1"));
        assert_eq!(rs.get_str(0, "b").unwrap(), None);
        assert!(rs.get_str(1, "a").is_err());
        assert!(rs.get_str(2, "a").is_err());
        assert!(rs.get_str(0, "c").is_err());
        assert!(rs.rows()[0].get_str(5).is_err());
        assert_eq!(rs.command_tag(), "SELECT 2");
    }
}
