use bytes::Bytes;
use pg_walstream_codec::pgoutput::{
    Begin, Delete, Insert, LogicalMessage, OldTuple, OwnedColumn, OwnedTupleData, PgOutputDecoder,
    ProtocolVersion, Relation, RelationColumn, ReplicaIdentity, Truncate, Update,
};
use pg_walstream_codec::{Lsn, Oid, PgTimestamp, Xid};
use serde_json::json;

use super::*;

fn relation() -> Vec<u8> {
    let mut wire = Vec::new();
    Relation {
        xid: None,
        oid: Oid(16384),
        namespace: "public".to_owned(),
        name: "t".to_owned(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![
            RelationColumn {
                flags: 1,
                name: "id".to_owned(),
                type_oid: Oid(23),
                type_modifier: -1,
            },
            RelationColumn {
                flags: 0,
                name: "big".to_owned(),
                type_oid: Oid(25),
                type_modifier: -1,
            },
            RelationColumn {
                flags: 0,
                name: "mood".to_owned(),
                type_oid: Oid(90_000),
                type_modifier: -1,
            },
        ],
    }
    .encode(&mut wire)
    .unwrap();
    wire
}

fn tuple(columns: Vec<OwnedColumn>) -> OwnedTupleData {
    OwnedTupleData { columns }
}

fn render_all(messages: &[Vec<u8>]) -> Result<Vec<Value>, RenderError> {
    let mut decoder = PgOutputDecoder::new(ProtocolVersion::V1);
    let mut renderer = Renderer::new();
    messages
        .iter()
        .map(|m| renderer.render(&decoder.decode(m).unwrap()))
        .collect()
}

#[test]
fn changes_render_all_four_column_states_with_names_and_types() {
    let mut begin = Vec::new();
    Begin {
        final_lsn: Lsn(0x1_0000_0010),
        commit_time: PgTimestamp(0),
        xid: Xid(744),
    }
    .encode(&mut begin);
    let mut typ = Vec::new();
    pg_walstream_codec::pgoutput::Type {
        xid: None,
        oid: Oid(90_000),
        namespace: "public".to_owned(),
        name: "mood".to_owned(),
    }
    .encode(&mut typ)
    .unwrap();
    let mut update = Vec::new();
    Update {
        xid: None,
        relation: Oid(16384),
        old: None,
        new: tuple(vec![
            OwnedColumn::Text(Bytes::from_static(b"1")),
            OwnedColumn::UnchangedToast,
            OwnedColumn::Null,
        ]),
    }
    .encode(&mut update)
    .unwrap();
    let mut delete = Vec::new();
    Delete {
        xid: None,
        relation: Oid(16384),
        old: OldTuple::Key(tuple(vec![
            OwnedColumn::Binary(Bytes::from_static(&[0, 0, 0, 1])),
            OwnedColumn::Null,
            OwnedColumn::Null,
        ])),
    }
    .encode(&mut delete)
    .unwrap();
    let rendered = render_all(&[begin, relation(), typ, update, delete]).unwrap();
    assert_eq!(
        rendered[0],
        json!({"kind":"begin","xid":744,"final_lsn":"1/10",
               "commit_time":"2000-01-01T00:00:00.000000Z"})
    );
    assert_eq!(rendered[1]["columns"][0]["type"], "int4");
    assert_eq!(rendered[1]["columns"][0]["key"], true);
    assert_eq!(
        rendered[3],
        json!({"kind":"update","schema":"public","table":"t","new":[
            {"name":"id","type_oid":23,"type":"int4","text":"1"},
            {"name":"big","type_oid":25,"type":"text","unchanged_toast":true},
            {"name":"mood","type_oid":90000,"type":"mood","null":true}]})
    );
    // The key's non-key columns are NULL placeholders on the wire: they are left out.
    assert_eq!(
        rendered[4]["old_key"],
        json!([{"name":"id","type_oid":23,"type":"int4","binary_hex":"00000001"}])
    );
}

#[test]
fn a_value_in_a_non_key_column_of_an_old_key_is_an_error() {
    let mut delete = Vec::new();
    Delete {
        xid: None,
        relation: Oid(16384),
        old: OldTuple::Key(tuple(vec![
            OwnedColumn::Text(Bytes::from_static(b"1")),
            OwnedColumn::Text(Bytes::from_static(b"x")),
            OwnedColumn::Null,
        ])),
    }
    .encode(&mut delete)
    .unwrap();
    let error = render_all(&[relation(), delete]).unwrap_err();
    assert!(
        matches!(&error, RenderError::NonKeyValue { column, .. } if column == "big"),
        "{error}"
    );
}

#[test]
fn unknown_relations_and_wrong_column_counts_are_errors() {
    let mut insert = Vec::new();
    Insert {
        xid: None,
        relation: Oid(16384),
        new: tuple(vec![OwnedColumn::Null]),
    }
    .encode(&mut insert)
    .unwrap();
    assert!(matches!(
        render_all(std::slice::from_ref(&insert)),
        Err(RenderError::UnknownRelation { oid: Oid(16384) })
    ));
    let mut truncate = Vec::new();
    Truncate {
        xid: None,
        flags: Truncate::<Vec<Oid>>::CASCADE,
        relations: vec![Oid(16384), Oid(1)],
    }
    .encode(&mut truncate)
    .unwrap();
    assert!(matches!(
        render_all(&[relation(), truncate]),
        Err(RenderError::UnknownRelation { oid: Oid(1) })
    ));
    let mut wide = Vec::new();
    Insert {
        xid: None,
        relation: Oid(16384),
        new: tuple(vec![OwnedColumn::Null; 4]),
    }
    .encode(&mut wide)
    .unwrap();
    let error = render_all(&[relation(), wide]).unwrap_err();
    assert!(error.to_string().contains("has 4 columns"), "{error}");
    // Fewer columns than the relation are as wrong as more, in every tuple position.
    let mut narrow = Vec::new();
    Insert {
        xid: None,
        relation: Oid(16384),
        new: tuple(vec![OwnedColumn::Null; 2]),
    }
    .encode(&mut narrow)
    .unwrap();
    let mut narrow_key = Vec::new();
    Delete {
        xid: None,
        relation: Oid(16384),
        old: OldTuple::Key(tuple(vec![OwnedColumn::Null])),
    }
    .encode(&mut narrow_key)
    .unwrap();
    for (bad, got) in [(narrow, 2), (narrow_key, 1)] {
        let error = render_all(&[relation(), bad]).unwrap_err();
        assert!(
            matches!(error, RenderError::ColumnCount { got: g, expected: 3, .. } if g == got),
            "{error}"
        );
    }
}

#[test]
fn messages_keep_binary_content_as_hex() {
    let mut text = Vec::new();
    LogicalMessage {
        xid: None,
        flags: 0,
        lsn: Lsn(5),
        prefix: "demo".to_owned(),
        content: Bytes::from_static(b"hello"),
    }
    .encode(&mut text)
    .unwrap();
    let mut binary = Vec::new();
    LogicalMessage {
        xid: None,
        flags: 1,
        lsn: Lsn(6),
        prefix: "demo".to_owned(),
        content: Bytes::from_static(b"\xff\x00"),
    }
    .encode(&mut binary)
    .unwrap();
    let rendered = render_all(&[text, binary]).unwrap();
    assert_eq!(
        rendered[0],
        json!({"kind":"message","transactional":false,"lsn":"0/5","prefix":"demo",
               "content":"hello"})
    );
    assert_eq!(rendered[1]["content_hex"], "ff00");
    assert_eq!(rendered[1]["transactional"], true);
}
