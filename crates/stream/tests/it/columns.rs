//! Tuples always have their Relation message's column count — with dropped and generated
//! columns and, on 15+, a publication column list — and old keys read as key columns only.

use pg_walstream_stream::{Change, EventKind};
use pg_walstream_testkit::servers;

use crate::support::{Fixture, collect};

/// (column name, text value) of the old key of `change`.
fn old_key(change: &Change) -> Vec<(String, String)> {
    change
        .old_key()
        .expect("an old key")
        .map(|(column, value)| {
            let text = value.value().expect("a key column has a value");
            (
                column.name.clone(),
                String::from_utf8_lossy(text).into_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn column_counts_match_and_old_keys_are_key_columns_only() {
    for server in servers() {
        let v = server.version();
        // On 15+ the publication lists columns: `note` is left out.
        let publication = if v >= 15 {
            "FOR TABLE k (a, b, id)"
        } else {
            "FOR TABLE k"
        };
        let fx = Fixture::new(
            server,
            "columns",
            "CREATE TABLE k (a int, dropme text, b text, note text,
                 g int GENERATED ALWAYS AS (a * 2) STORED, id int, PRIMARY KEY (id, a));
             ALTER TABLE k DROP COLUMN dropme;",
            publication,
        )
        .await;
        let mut stream = fx.start(fx.config()).await;
        fx.exec(&[
            "INSERT INTO k (a, b, note, id) VALUES (1, 'x', 'n', 1)",
            "UPDATE k SET id = 2 WHERE id = 1",
            "UPDATE k SET b = 'y' WHERE id = 2",
            "DELETE FROM k WHERE id = 2",
        ])
        .await;
        let events = collect(&mut stream, 4, v).await;
        let changes: Vec<(&str, &Change)> = events
            .iter()
            .filter_map(|e| match e.kind() {
                EventKind::Insert(c) => Some(("insert", c)),
                EventKind::Update(c) => Some(("update", c)),
                EventKind::Delete(c) => Some(("delete", c)),
                _ => None,
            })
            .collect();
        let kinds: Vec<&str> = changes.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["insert", "update", "update", "delete"], "PG {v}");
        let relation = changes[0].1.relation();
        let names: Vec<&str> = relation.columns().iter().map(|c| c.name.as_str()).collect();
        let expected: &[&str] = if v >= 15 {
            &["a", "b", "id"]
        } else {
            &["a", "b", "note", "id"]
        };
        assert_eq!(
            names, expected,
            "PG {v}: dropped and generated columns are not sent"
        );
        for (kind, change) in &changes {
            if let Some(new) = change.new_tuple() {
                assert_eq!(new.len(), expected.len(), "PG {v}: {kind}");
            }
            if let Some(old) = change.old_tuple() {
                assert_eq!(old.tuple().len(), expected.len(), "PG {v}: {kind} old");
            }
        }
        let key = |a: &str, id: &str| {
            vec![
                ("a".to_owned(), a.to_owned()),
                ("id".to_owned(), id.to_owned()),
            ]
        };
        assert_eq!(old_key(changes[1].1), key("1", "1"), "PG {v}: key change");
        assert!(changes[2].1.old_key().is_none(), "PG {v}: key kept");
        assert_eq!(old_key(changes[3].1), key("1", "2"), "PG {v}: delete");
    }
}
