//! Recovery configuration for a backup that should start as a standby (`pg_basebackup -R`):
//! `standby.signal` and `primary_conninfo` (and `primary_slot_name`) in
//! `postgresql.auto.conf`.

use std::io::Write as _;
use std::path::Path;

use crate::error::{BackupError, Result};
use crate::output::PRIVATE_FILE_MODE;

/// A `postgresql.conf` string literal.
fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// The lines `-R` appends to `postgresql.auto.conf`.
pub fn recovery_conf_lines(primary_conninfo: &str, slot: Option<&str>) -> String {
    let mut text = format!("primary_conninfo = {}\n", conf_quote(primary_conninfo));
    if let Some(slot) = slot {
        text.push_str("primary_slot_name = ");
        text.push_str(&conf_quote(slot));
        text.push('\n');
    }
    text
}

/// Writes `standby.signal` and appends the recovery settings to `postgresql.auto.conf` in
/// the extracted data directory `data_dir`.
///
/// # Errors
/// I/O errors.
pub fn write_standby_config(
    data_dir: &Path,
    primary_conninfo: &str,
    slot: Option<&str>,
) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let signal = data_dir.join("standby.signal");
    std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE_MODE)
        .open(&signal)
        .map_err(BackupError::io("writing", &signal))?;
    let auto_conf = data_dir.join("postgresql.auto.conf");
    let mut file = std::fs::File::options()
        .create(true)
        .append(true)
        .mode(PRIVATE_FILE_MODE)
        .open(&auto_conf)
        .map_err(BackupError::io("opening", &auto_conf))?;
    file.write_all(recovery_conf_lines(primary_conninfo, slot).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(BackupError::io("writing", &auto_conf))
}

/// A libpq `key=value` value, quoted when it needs to be.
pub fn conninfo_value(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '\'', '\\', '\t', '\n']) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn standby_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("postgresql.auto.conf"), "# existing\n").unwrap();
        let conninfo = format!("user=repl password={} host=/tmp", conninfo_value("it's"));
        write_standby_config(dir.path(), &conninfo, Some("slot1")).unwrap();
        let signal = std::fs::metadata(dir.path().join("standby.signal")).unwrap();
        assert!(signal.is_file());
        assert_eq!(signal.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("postgresql.auto.conf")).unwrap(),
            "# existing\nprimary_conninfo = 'user=repl password=''it\\\\''s'' host=/tmp'\n\
             primary_slot_name = 'slot1'\n"
        );
    }
}
