//! `cargo xtask codegen types`: PostgreSQL's built-in type catalogue for the codec crate.
//!
//! Source: `pg_type` rows with OID < 10000 (`FirstGenbkiObjectId`: every type initdb creates
//! from `src/include/catalog/pg_type.dat`, the array types genbki derives from its
//! `array_type_oid` fields, and the row types of the system catalogs) on a throwaway server
//! of each version. A server's catalogue is exactly what its `pg_type.dat` produced, and it
//! is on this machine: xtask needs no network and no PostgreSQL source tree.
//!
//! `--pg-source VERSION=DIR` also reads `pg_type.dat` of a source tree and fails unless every
//! type it defines is in that version's server catalogue, identical (see `pg_type_dat`).
//!
//! Output: `crates/codec/src/types/catalog.rs`, one entry per OID and distinct form, each
//! with the set of versions it holds for; its module documentation lists the per-version
//! differences.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use pg_walstream_testkit::{SUPPORTED_VERSIONS, TestServer, workspace_root};

/// Arguments of `cargo xtask codegen types`.
#[derive(Debug, Args)]
pub(crate) struct TypesArgs {
    /// Comma-separated PostgreSQL major versions to read (all supported ones by default;
    /// the catalogue covers 14–18, so give them all for a file to commit).
    #[arg(long, value_delimiter = ',', default_values_t = SUPPORTED_VERSIONS)]
    versions: Vec<u32>,
    /// Compare with the checked-in file instead of writing it; fail if they differ.
    #[arg(long)]
    check: bool,
    /// Also cross-check against a PostgreSQL source tree: `VERSION=DIR` (repeatable). Every
    /// type DIR/src/include/catalog/pg_type.dat defines must be in that server's catalogue,
    /// identical.
    #[arg(long = "pg-source", value_name = "VERSION=DIR")]
    pg_sources: Vec<String>,
}

/// One `pg_type` row, as the catalogue keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TypeRow {
    pub(super) name: String,
    pub(super) array: u32,
    pub(super) element: u32,
    pub(super) category: char,
    pub(super) has_send: bool,
    pub(super) has_receive: bool,
}

const QUERY: &str = "SELECT oid::int8, typname::text, typarray::int8, typelem::int8, \
    typcategory::text, typsend::oid <> 0, typreceive::oid <> 0 \
    FROM pg_type WHERE oid < 10000 ORDER BY oid";

fn output_path() -> PathBuf {
    workspace_root().join("crates/codec/src/types/catalog.rs")
}

pub(crate) fn run(args: &TypesArgs) -> Result<(), String> {
    let mut versions = args.versions.clone();
    versions.sort_unstable();
    versions.dedup();
    if let Some(bad) = versions.iter().find(|v| !SUPPORTED_VERSIONS.contains(v)) {
        return Err(format!(
            "PostgreSQL {bad} is not supported (expected some of {SUPPORTED_VERSIONS:?})"
        ));
    }
    crate::pg::install(&versions)?;
    let mut catalogues = Vec::new();
    for &version in &versions {
        let (server_version, rows) = read_catalogue(version)?;
        eprintln!(
            "xtask: PostgreSQL {server_version}: {} built-in types",
            rows.len()
        );
        catalogues.push((version, server_version, rows));
    }
    for source in &args.pg_sources {
        cross_check(source, &catalogues)?;
    }
    let text = render(&catalogues);
    let path = output_path();
    if args.check {
        let current = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if current != text {
            return Err(format!(
                "{} is not what `cargo xtask codegen types` generates; run it and commit",
                path.display()
            ));
        }
        eprintln!("xtask: {} is up to date", path.display());
        return Ok(());
    }
    std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// Checks `VERSION=DIR`'s pg_type.dat against the catalogue read from server VERSION.
fn cross_check(
    source: &str,
    catalogues: &[(u32, String, BTreeMap<u32, TypeRow>)],
) -> Result<(), String> {
    let (version, dir) = source
        .split_once('=')
        .ok_or_else(|| format!("--pg-source {source:?}: expected VERSION=DIR"))?;
    let version: u32 = version
        .parse()
        .map_err(|_| format!("--pg-source {source:?}: {version:?} is not a major version"))?;
    let (_, server_version, server) = catalogues
        .iter()
        .find(|(v, _, _)| *v == version)
        .ok_or_else(|| {
            format!("--pg-source {source:?}: PostgreSQL {version} is not in --versions")
        })?;
    let path = PathBuf::from(dir).join("src/include/catalog/pg_type.dat");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let defined =
        super::pg_type_dat::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let differing: Vec<String> = defined
        .iter()
        .filter(|(oid, row)| server.get(oid) != Some(row))
        .map(|(oid, row)| format!("{oid}: file {row:?}, server {:?}", server.get(oid)))
        .collect();
    if !differing.is_empty() {
        return Err(format!(
            "{} and PostgreSQL {server_version} disagree:\n  {}",
            path.display(),
            differing.join("\n  ")
        ));
    }
    eprintln!(
        "xtask: {}: its {} types match PostgreSQL {server_version} ({} more there: catalog row \
         types from the catalog headers)",
        path.display(),
        defined.len(),
        server.len() - defined.len()
    );
    Ok(())
}

/// `SHOW server_version` and every built-in `pg_type` row of a throwaway server.
fn read_catalogue(version: u32) -> Result<(String, BTreeMap<u32, TypeRow>), String> {
    let server = TestServer::start(version).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let client = server.admin("postgres").await;
        let query_error = |e: tokio_postgres::Error| format!("PostgreSQL {version}: {e}");
        let server_version: String = client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(query_error)?
            .get(0);
        let mut rows = BTreeMap::new();
        for row in client.query(QUERY, &[]).await.map_err(query_error)? {
            let oid = u32::try_from(row.get::<_, i64>(0)).map_err(|e| e.to_string())?;
            let array = u32::try_from(row.get::<_, i64>(2)).map_err(|e| e.to_string())?;
            let element = u32::try_from(row.get::<_, i64>(3)).map_err(|e| e.to_string())?;
            let category: String = row.get(4);
            let category = match category.as_bytes() {
                [c] if c.is_ascii_uppercase() => char::from(*c),
                _ => return Err(format!("type {oid}: unexpected category {category:?}")),
            };
            rows.insert(
                oid,
                TypeRow {
                    name: row.get(1),
                    array,
                    element,
                    category,
                    has_send: row.get(5),
                    has_receive: row.get(6),
                },
            );
        }
        Ok((server_version, rows))
    })
}

/// Version-set bits as the codec's `PgVersions` has them (bit 0 = 14).
fn bit(version: u32) -> u8 {
    1 << (version - 14)
}

fn describe(bits: u8) -> String {
    let list: Vec<String> = (14..=18)
        .filter(|v| bits & bit(*v) != 0)
        .map(|v| v.to_string())
        .collect();
    list.join(", ")
}

/// Reads one attribute of a row, for describing differences.
type Field = fn(&TypeRow) -> String;

/// The attributes of `row` that differ between `forms` (the forms of one OID).
fn fields(forms: &[(TypeRow, u8)], row: &TypeRow) -> String {
    let getters: [(&str, Field); 6] = [
        ("name", |r| r.name.clone()),
        ("category", |r| r.category.to_string()),
        ("array type", |r| r.array.to_string()),
        ("element type", |r| r.element.to_string()),
        ("send", |r| r.has_send.to_string()),
        ("receive", |r| r.has_receive.to_string()),
    ];
    let parts: Vec<String> = getters
        .iter()
        .filter(|(_, get)| {
            forms
                .iter()
                .any(|(other, _)| get(other) != get(&forms[0].0))
        })
        .map(|(label, get)| format!("{label} {}", get(row)))
        .collect();
    parts.join(", ")
}

/// The generated Rust source.
fn render(catalogues: &[(u32, String, BTreeMap<u32, TypeRow>)]) -> String {
    let all: u8 = catalogues.iter().map(|(v, _, _)| bit(*v)).sum();
    // OID → distinct forms with the versions each holds for, in version order.
    let mut merged: BTreeMap<u32, Vec<(TypeRow, u8)>> = BTreeMap::new();
    for (version, _, rows) in catalogues {
        for (oid, row) in rows {
            let forms = merged.entry(*oid).or_default();
            match forms.iter_mut().find(|(r, _)| r == row) {
                Some((_, bits)) => *bits |= bit(*version),
                None => forms.push((row.clone(), bit(*version))),
            }
        }
    }
    let mut out = String::new();
    out.push_str("//! @generated by `cargo xtask codegen types`: do not edit.\n//!\n");
    let sources: Vec<&str> = catalogues.iter().map(|(_, s, _)| s.as_str()).collect();
    let _ = writeln!(
        out,
        "//! Built-in types (`pg_type`, OID < 10000) of PostgreSQL {}.",
        sources.join(", ")
    );
    out.push_str("//!\n//! Differences between the versions:\n");
    let mut differences = 0;
    for (oid, forms) in &merged {
        let line = match forms.as_slice() {
            [(row, bits)] if *bits == all => continue,
            [(row, bits)] => format!("`{}`: only in {}", row.name, describe(*bits)),
            [(first, _), ..] => {
                let parts: Vec<String> = forms
                    .iter()
                    .map(|(row, bits)| format!("{} in {}", fields(forms, row), describe(*bits)))
                    .collect();
                format!("`{}`: {}", first.name, parts.join("; "))
            }
            [] => continue,
        };
        differences += 1;
        let _ = writeln!(out, "//! - {oid} {line}");
    }
    if differences == 0 {
        out.push_str("//! none.\n");
    }
    out.push_str("\nuse super::{BuiltinType, t};\n\n");
    let count: usize = merged.values().map(Vec::len).sum();
    out.push_str("#[rustfmt::skip]\n");
    let _ = writeln!(out, "pub(super) static TYPES: [BuiltinType; {count}] = [");
    for (oid, forms) in &merged {
        for (row, bits) in forms {
            let _ = writeln!(
                out,
                "    t({oid}, {:?}, {}, {}, b'{}', {}, {}, 0b{bits:05b}),",
                row.name, row.array, row.element, row.category, row.has_send, row.has_receive
            );
        }
    }
    out.push_str("];\n");
    out
}
