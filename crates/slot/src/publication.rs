//! Publication helpers: `CREATE`/`ALTER`/`DROP PUBLICATION` with every identifier quoted.
//!
//! Row filters are SQL expressions and are sent as given (inside `WHERE (...)`): build them
//! from trusted text only.

use core::fmt::Write as _;

use pg_walstream_transport::Transport;

use crate::name::{QuotedList, quote_identifier};
use crate::{ServerVersion, SlotError};

/// A DML operation a publication publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `INSERT`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `TRUNCATE`.
    Truncate,
}

impl Operation {
    fn keyword(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Truncate => "truncate",
        }
    }
}

/// A table in a publication, optionally with a column list and a row filter (15+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedTable {
    schema: Option<String>,
    name: String,
    columns: Option<Vec<String>>,
    row_filter: Option<String>,
}

impl PublishedTable {
    /// Table `name` found through the `search_path`.
    pub fn new(name: &str) -> Self {
        PublishedTable {
            schema: None,
            name: name.to_owned(),
            columns: None,
            row_filter: None,
        }
    }

    /// Table `schema.name`.
    pub fn qualified(schema: &str, name: &str) -> Self {
        PublishedTable {
            schema: Some(schema.to_owned()),
            ..Self::new(name)
        }
    }

    /// Publish only these columns (PostgreSQL 15+).
    #[must_use]
    pub fn columns<S: AsRef<str>>(mut self, columns: &[S]) -> Self {
        self.columns = Some(columns.iter().map(|c| c.as_ref().to_owned()).collect());
        self
    }

    /// Publish only rows matching this SQL expression (PostgreSQL 15+). Sent verbatim.
    #[must_use]
    pub fn row_filter(mut self, expression: &str) -> Self {
        self.row_filter = Some(expression.to_owned());
        self
    }

    fn render(&self, version: ServerVersion) -> Result<String, SlotError> {
        let mut text = String::new();
        if let Some(schema) = &self.schema {
            text.push_str(&quote_identifier("schema", schema)?);
            text.push('.');
        }
        text.push_str(&quote_identifier("table", &self.name)?);
        if let Some(columns) = &self.columns {
            version.require("publication column lists", 15)?;
            let quoted = columns
                .iter()
                .map(|c| quote_identifier("column", c))
                .collect::<Result<Vec<_>, _>>()?;
            let _ = write!(text, " ({})", QuotedList(&quoted));
        }
        if let Some(filter) = &self.row_filter {
            version.require("publication row filters", 15)?;
            let _ = write!(text, " WHERE ({filter})");
        }
        Ok(text)
    }
}

/// What a publication covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicationTarget {
    /// `FOR ALL TABLES` (needs superuser).
    AllTables,
    /// `FOR TABLE ...`.
    Tables(Vec<PublishedTable>),
}

/// A `CREATE PUBLICATION` statement.
///
/// ```
/// use pg_walstream_slot::{Operation, Publication, PublicationTarget, PublishedTable, ServerVersion};
/// let publication = Publication::new("orders_pub", PublicationTarget::Tables(vec![
///     PublishedTable::qualified("shop", "orders").columns(&["id", "total"]).row_filter("total > 0"),
/// ]))
/// .publish(&[Operation::Insert, Operation::Update])
/// .via_partition_root(true);
/// assert_eq!(
///     publication.create_sql(ServerVersion::from_num(160_014)).unwrap(),
///     r#"CREATE PUBLICATION "orders_pub" FOR TABLE "shop"."orders" ("id", "total") WHERE (total > 0) WITH (publish = 'insert, update', publish_via_partition_root = true)"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    name: String,
    target: PublicationTarget,
    publish: Option<Vec<Operation>>,
    via_partition_root: Option<bool>,
}

impl Publication {
    /// A publication called `name` covering `target`.
    pub fn new(name: &str, target: PublicationTarget) -> Self {
        Publication {
            name: name.to_owned(),
            target,
            publish: None,
            via_partition_root: None,
        }
    }

    /// Publish only these operations (default: all).
    #[must_use]
    pub fn publish(mut self, operations: &[Operation]) -> Self {
        self.publish = Some(operations.to_vec());
        self
    }

    /// Publish changes of partitions as changes of their partitioned root table.
    #[must_use]
    pub fn via_partition_root(mut self, yes: bool) -> Self {
        self.via_partition_root = Some(yes);
        self
    }

    /// The `CREATE PUBLICATION` statement for a server of version `version`.
    ///
    /// # Errors
    /// [`SlotError::InvalidName`] for names that cannot be quoted; [`SlotError::Unsupported`]
    /// for column lists or row filters before 15; [`SlotError::InvalidOptions`] for an empty
    /// table list or operation list.
    pub fn create_sql(&self, version: ServerVersion) -> Result<String, SlotError> {
        let mut sql = format!(
            "CREATE PUBLICATION {}",
            quote_identifier("publication", &self.name)?
        );
        match &self.target {
            PublicationTarget::AllTables => sql.push_str(" FOR ALL TABLES"),
            PublicationTarget::Tables(tables) => {
                if tables.is_empty() {
                    return Err(SlotError::InvalidOptions(
                        "a publication for tables needs at least one table",
                    ));
                }
                let rendered = tables
                    .iter()
                    .map(|t| t.render(version))
                    .collect::<Result<Vec<_>, _>>()?;
                let _ = write!(sql, " FOR TABLE {}", QuotedList(&rendered));
            }
        }
        let mut with = Vec::new();
        if let Some(operations) = &self.publish {
            if operations.is_empty() {
                return Err(SlotError::InvalidOptions(
                    "a publication must publish at least one operation",
                ));
            }
            let list: Vec<&str> = operations.iter().map(|op| op.keyword()).collect();
            with.push(format!("publish = '{}'", list.join(", ")));
        }
        if let Some(root) = self.via_partition_root {
            with.push(format!("publish_via_partition_root = {root}"));
        }
        if !with.is_empty() {
            let _ = write!(sql, " WITH ({})", with.join(", "));
        }
        Ok(sql)
    }

    /// Creates the publication.
    ///
    /// # Errors
    /// As [`create_sql`](Self::create_sql); [`SlotError::AlreadyExists`] and other server and
    /// connection errors.
    pub async fn create(&self, connection: &mut impl Transport) -> Result<(), SlotError> {
        let sql = self.create_sql(ServerVersion::of(connection)?)?;
        connection.simple_query(&sql).await?;
        Ok(())
    }
}

/// How [`alter_publication_tables`] changes a publication's table list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterTables {
    /// `ADD TABLE`.
    Add,
    /// `DROP TABLE` (column lists and row filters are not allowed here).
    Drop,
    /// `SET TABLE`: replace the list.
    Set,
}

/// Adds, drops or replaces tables of publication `name`.
///
/// # Errors
/// Naming and version errors as for [`Publication::create_sql`]; server and connection errors.
pub async fn alter_publication_tables(
    connection: &mut impl Transport,
    name: &str,
    action: AlterTables,
    tables: &[PublishedTable],
) -> Result<(), SlotError> {
    let version = ServerVersion::of(connection)?;
    let sql = alter_tables_sql(name, action, tables, version)?;
    connection.simple_query(&sql).await?;
    Ok(())
}

fn alter_tables_sql(
    name: &str,
    action: AlterTables,
    tables: &[PublishedTable],
    version: ServerVersion,
) -> Result<String, SlotError> {
    if tables.is_empty() {
        return Err(SlotError::InvalidOptions("no tables given"));
    }
    if action == AlterTables::Drop
        && tables
            .iter()
            .any(|t| t.columns.is_some() || t.row_filter.is_some())
    {
        return Err(SlotError::InvalidOptions(
            "DROP TABLE takes no column lists or row filters",
        ));
    }
    let verb = match action {
        AlterTables::Add => "ADD",
        AlterTables::Drop => "DROP",
        AlterTables::Set => "SET",
    };
    let rendered = tables
        .iter()
        .map(|t| t.render(version))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!(
        "ALTER PUBLICATION {} {verb} TABLE {}",
        quote_identifier("publication", name)?,
        QuotedList(&rendered)
    ))
}

/// Drops publication `name`; with `if_exists`, a missing one is not an error.
///
/// # Errors
/// [`SlotError::DoesNotExist`] (without `if_exists`), other server and connection errors.
pub async fn drop_publication(
    connection: &mut impl Transport,
    name: &str,
    if_exists: bool,
) -> Result<(), SlotError> {
    let if_exists = if if_exists { "IF EXISTS " } else { "" };
    let sql = format!(
        "DROP PUBLICATION {if_exists}{}",
        quote_identifier("publication", name)?
    );
    connection.simple_query(&sql).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V14: ServerVersion = ServerVersion {
        major: 14,
        minor: 23,
    };
    const V15: ServerVersion = ServerVersion {
        major: 15,
        minor: 18,
    };

    #[test]
    fn all_tables_and_hostile_names() {
        let all = Publication::new("p\"; DROP TABLE x; --", PublicationTarget::AllTables);
        assert_eq!(
            all.create_sql(V14).unwrap(),
            r#"CREATE PUBLICATION "p""; DROP TABLE x; --" FOR ALL TABLES"#
        );
        assert!(
            Publication::new("a\0", PublicationTarget::AllTables)
                .create_sql(V14)
                .is_err()
        );
    }

    #[test]
    fn column_lists_and_filters_need_15() {
        let target = PublicationTarget::Tables(vec![PublishedTable::new("t").columns(&["a"])]);
        assert!(matches!(
            Publication::new("p", target.clone()).create_sql(V14),
            Err(SlotError::Unsupported { needs: 15, .. })
        ));
        assert_eq!(
            Publication::new("p", target).create_sql(V15).unwrap(),
            r#"CREATE PUBLICATION "p" FOR TABLE "t" ("a")"#
        );
    }

    #[test]
    fn alter_statements() {
        let tables = [
            PublishedTable::new("a"),
            PublishedTable::qualified("s", "b"),
        ];
        assert_eq!(
            alter_tables_sql("p", AlterTables::Add, &tables, V14).unwrap(),
            r#"ALTER PUBLICATION "p" ADD TABLE "a", "s"."b""#
        );
        assert!(
            alter_tables_sql(
                "p",
                AlterTables::Drop,
                &[PublishedTable::new("a").row_filter("x")],
                V15
            )
            .is_err()
        );
        assert!(alter_tables_sql("p", AlterTables::Set, &[], V15).is_err());
        assert!(
            Publication::new("p", PublicationTarget::Tables(vec![]))
                .create_sql(V15)
                .is_err()
        );
        assert!(
            Publication::new("p", PublicationTarget::AllTables)
                .publish(&[])
                .create_sql(V15)
                .is_err()
        );
    }
}
