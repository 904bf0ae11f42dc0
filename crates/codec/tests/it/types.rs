//! The generated built-in type catalogue is exactly `pg_type` (OID < 10000) of every server
//! version of the run, and the lookups agree with it.

use std::collections::BTreeMap;

use pg_walstream_codec::Oid;
use pg_walstream_codec::types::{
    BuiltinType, PgVersions, TypeCategory, builtin_type, builtin_type_in, builtin_types,
};
use pg_walstream_testkit::servers;

/// (name, array, element, category, send, receive) as the catalogue keeps them.
type Row = (String, u32, u32, u8, bool, bool);

fn row(t: &BuiltinType) -> Row {
    (
        t.name.to_owned(),
        t.array.map_or(0, |o| o.0),
        t.element.map_or(0, |o| o.0),
        t.category.as_char(),
        t.has_send,
        t.has_receive,
    )
}

#[tokio::test(flavor = "current_thread")]
async fn the_catalogue_is_pg_type_of_every_server_version() {
    let servers = servers();
    assert!(!servers.is_empty(), "no test servers");
    for server in servers {
        let v = server.version();
        let client = server.admin("postgres").await;
        let rows = client
            .query(
                "SELECT oid::int8, typname::text, typarray::int8, typelem::int8, \
                 typcategory::text, typsend::oid <> 0, typreceive::oid <> 0 \
                 FROM pg_type WHERE oid < 10000 ORDER BY oid",
                &[],
            )
            .await
            .expect("pg_type");
        let actual: BTreeMap<u32, Row> = rows
            .iter()
            .map(|r| {
                let oid = |i| u32::try_from(r.get::<_, i64>(i)).unwrap();
                let category: String = r.get(4);
                (
                    oid(0),
                    (
                        r.get(1),
                        oid(2),
                        oid(3),
                        category.as_bytes()[0],
                        r.get(5),
                        r.get(6),
                    ),
                )
            })
            .collect();
        let expected: BTreeMap<u32, Row> = builtin_types()
            .iter()
            .filter(|t| t.versions.contains(v))
            .map(|t| (t.oid.0, row(t)))
            .collect();
        let missing: Vec<_> = actual
            .iter()
            .filter(|(oid, r)| expected.get(oid) != Some(r))
            .collect();
        let extra: Vec<_> = expected
            .iter()
            .filter(|(oid, r)| actual.get(oid) != Some(r))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "PostgreSQL {v}: the catalogue differs from pg_type (run `cargo xtask codegen \
             types`): server has {missing:?}, catalogue has {extra:?}"
        );
        for (oid, r) in &actual {
            let found = builtin_type_in(Oid(*oid), v).expect("in the catalogue");
            assert_eq!(&row(found), r, "PostgreSQL {v}: lookup of {oid}");
        }
    }
}

#[test]
fn lookups_find_arrays_ranges_and_version_specific_forms() {
    let types = builtin_types();
    assert!(types.windows(2).all(|w| w[0].oid.0 <= w[1].oid.0), "sorted");
    for (oid, name, category) in [
        (1022, "_float8", TypeCategory::Array),
        (1007, "_int4", TypeCategory::Array),
        (3904, "int4range", TypeCategory::Range),
        (3905, "_int4range", TypeCategory::Array),
        (4451, "int4multirange", TypeCategory::Range),
        (3802, "jsonb", TypeCategory::UserDefined),
        (2249, "record", TypeCategory::Pseudo),
    ] {
        let t = builtin_type(Oid(oid)).unwrap_or_else(|| panic!("{oid}"));
        assert_eq!((t.name, t.category), (name, category), "{oid}");
        assert_eq!(t.versions, PgVersions::ALL, "{oid}");
    }
    assert_eq!(builtin_type(Oid(3905)).unwrap().element, Some(Oid(3904)));
    // "char" moved to the internal category in PostgreSQL 15.
    assert_eq!(
        builtin_type_in(Oid(18), 14).unwrap().category,
        TypeCategory::String
    );
    assert_eq!(
        builtin_type_in(Oid(18), 15).unwrap().category,
        TypeCategory::Internal
    );
    assert_eq!(
        builtin_type(Oid(18)).unwrap().category,
        TypeCategory::Internal
    );
    assert!(builtin_type_in(Oid(16), 13).is_none());
    assert!(builtin_type(Oid(0)).is_none() && builtin_type(Oid(99_999)).is_none());
    for c in b"ABCDEGINPRSTUVXZ" {
        assert_eq!(TypeCategory::from_char(*c).unwrap().as_char(), *c);
    }
    assert!(TypeCategory::from_char(b'Q').is_none());
}
