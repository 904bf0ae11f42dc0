//! Names of PostgreSQL's built-in types (pgoutput sends Type messages only for others), from
//! the codec's generated catalogue of PostgreSQL 14–18.

use pg_walstream_codec::Oid;
use pg_walstream_codec::types::builtin_type;

/// The name of a built-in type OID, as `pg_type.typname` spells it (`_float8` for OID 1022).
pub(crate) fn builtin_type_name(oid: Oid) -> Option<&'static str> {
    builtin_type(oid).map(|t| t.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_ranges_and_multiranges_have_names() {
        for (oid, name) in [
            (23, "int4"),
            (1022, "_float8"),
            (1231, "_numeric"),
            (3904, "int4range"),
            (3905, "_int4range"),
            (3926, "int8range"),
            (4451, "int4multirange"),
            (2951, "_uuid"),
            (3807, "_jsonb"),
        ] {
            assert_eq!(builtin_type_name(Oid(oid)), Some(name), "{oid}");
        }
        assert_eq!(builtin_type_name(Oid(90_000)), None);
    }
}
