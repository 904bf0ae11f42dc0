//! Reading PostgreSQL's `src/include/catalog/pg_type.dat` (the source initdb fills `pg_type`
//! from), to cross-check the catalogue read from servers against the source tree of a
//! release: `cargo xtask codegen types --pg-source 17=/path/to/postgresql-17.x`.
//!
//! The file is a list of `{ key => 'value', ... }` entries. Like genbki.pl, an entry with
//! `array_type_oid` also defines its array type (`_name`, category `A`, element = the entry,
//! `array_send`/`array_recv`); `typelem` and `typarray` may name a type instead of giving its
//! OID; a missing or `-` `typsend`/`typreceive` means none. Catalog row types that genbki
//! takes from the catalog headers (`BKI_ROWTYPE_OID`) are not in this file.

use std::collections::BTreeMap;

use super::types::TypeRow;

/// Splits the file into its entries' key/value maps.
fn entries(text: &str) -> Result<Vec<BTreeMap<String, String>>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut current: Option<BTreeMap<String, String>> = None;
    let mut key = String::new();
    while let Some(c) = chars.next() {
        match c {
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '{' if current.is_none() => current = Some(BTreeMap::new()),
            '}' => out.push(current.take().ok_or("'}' outside an entry")?),
            '\'' => {
                let map = current.as_mut().ok_or("a quoted value outside an entry")?;
                let mut value = String::new();
                loop {
                    match chars.next().ok_or("unterminated quoted value")? {
                        '\\' => value.push(chars.next().ok_or("unterminated escape")?),
                        '\'' => break,
                        other => value.push(other),
                    }
                }
                let name = key.trim().trim_end_matches("=>").trim().to_owned();
                if name.is_empty() {
                    return Err(format!("value {value:?} without a key"));
                }
                map.insert(name, value);
                key.clear();
            }
            ',' if current.is_some() => key.clear(),
            other if current.is_some() => key.push(other),
            _ => {}
        }
    }
    if current.is_some() {
        return Err("the last entry is not closed".to_owned());
    }
    Ok(out)
}

/// The types `pg_type.dat` defines, by OID, as `pg_type` rows.
pub(super) fn parse(text: &str) -> Result<BTreeMap<u32, TypeRow>, String> {
    let entries = entries(text)?;
    let oid_of = |e: &BTreeMap<String, String>, key: &str| -> Result<Option<u32>, String> {
        e.get(key)
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| format!("{key} {v:?} is not an OID"))
            })
            .transpose()
    };
    // Names (of entries and of the array types they generate) to OIDs, for references.
    let mut names = BTreeMap::new();
    for e in &entries {
        let name = e.get("typname").ok_or("an entry without typname")?;
        let oid = oid_of(e, "oid")?.ok_or_else(|| format!("{name} has no oid"))?;
        names.insert(name.clone(), oid);
        if let Some(array) = oid_of(e, "array_type_oid")? {
            names.insert(format!("_{name}"), array);
        }
    }
    let reference = |e: &BTreeMap<String, String>, key: &str| -> Result<u32, String> {
        match e.get(key).map(String::as_str) {
            None | Some("0" | "-") => Ok(0),
            Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => {
                v.parse().map_err(|_| format!("{key} {v:?}"))
            }
            Some(v) => names
                .get(v)
                .copied()
                .ok_or_else(|| format!("{key} names an unknown type {v:?}")),
        }
    };
    let has = |e: &BTreeMap<String, String>, key: &str| e.get(key).is_some_and(|v| v != "-");
    let mut rows = BTreeMap::new();
    for e in &entries {
        let name = e["typname"].clone();
        let oid = names[&name];
        let category = match e.get("typcategory").map(String::as_bytes) {
            Some([c]) => char::from(*c),
            _ => {
                return Err(format!(
                    "{name}: typcategory is missing or not one character"
                ));
            }
        };
        let array = match oid_of(e, "array_type_oid")? {
            Some(array) => {
                rows.insert(
                    array,
                    TypeRow {
                        name: format!("_{name}"),
                        array: 0,
                        element: oid,
                        category: 'A',
                        has_send: true,
                        has_receive: true,
                    },
                );
                array
            }
            None => reference(e, "typarray")?,
        };
        let row = TypeRow {
            name: name.clone(),
            array,
            element: reference(e, "typelem")?,
            category,
            has_send: has(e, "typsend"),
            has_receive: has(e, "typreceive"),
        };
        if rows.insert(oid, row).is_some() {
            return Err(format!("OID {oid} ({name}) is defined twice"));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few entries in the file's syntax, covering its rules (written for this test).
    const SAMPLE: &str = r"
[
# a comment with 'quotes' and { braces }
{ oid => '16', array_type_oid => '1000',
  descr => 'boolean, \'true\'/\'false\'',
  typname => 'bool', typcategory => 'B',
  typreceive => 'boolrecv', typsend => 'boolsend' },
{ oid => '18', typname => 'char', typcategory => 'Z',
  typreceive => 'charrecv', typsend => 'charsend' },
{ oid => '19', array_type_oid => '1003', typname => 'name', typcategory => 'S',
  typelem => 'char', typreceive => 'namerecv', typsend => 'namesend' },
{ oid => '2249', typname => 'record', typcategory => 'P', typarray => '_record',
  typreceive => 'record_recv', typsend => 'record_send' },
{ oid => '2287', typname => '_record', typcategory => 'P', typelem => 'record',
  typreceive => 'array_recv', typsend => 'array_send' },
{ oid => '2276', typname => 'any', typcategory => 'P',
  typreceive => '-', typsend => '-' },
]
";

    fn row(name: &str, array: u32, element: u32, category: char, send: bool) -> TypeRow {
        TypeRow {
            name: name.to_owned(),
            array,
            element,
            category,
            has_send: send,
            has_receive: send,
        }
    }

    #[test]
    fn entries_arrays_references_and_defaults() {
        let rows = parse(SAMPLE).unwrap();
        let expected: BTreeMap<u32, TypeRow> = [
            (16, row("bool", 1000, 0, 'B', true)),
            (1000, row("_bool", 0, 16, 'A', true)),
            (18, row("char", 0, 0, 'Z', true)),
            (19, row("name", 1003, 18, 'S', true)),
            (1003, row("_name", 0, 19, 'A', true)),
            (2249, row("record", 2287, 0, 'P', true)),
            (2287, row("_record", 0, 2249, 'P', true)),
            (2276, row("any", 0, 0, 'P', false)),
        ]
        .into_iter()
        .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn malformed_files_are_errors() {
        for bad in [
            "[ { oid => '1', typname => 'x', typcategory => 'U' ",
            "[ { oid => '1', typcategory => 'U' } ]",
            "[ { oid => 'x', typname => 'x', typcategory => 'U' } ]",
            "[ { oid => '1', typname => 'x', typcategory => 'U', typelem => 'nope' } ]",
            "[ { oid => '1', typname => 'x' } ]",
            "[ { oid => '1', typname => 'x', typcategory => 'U' },
               { oid => '1', typname => 'y', typcategory => 'U' } ]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
