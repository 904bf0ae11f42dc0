//! Operating-system concerns: running commands, and the unprivileged user that owns the server
//! when the tests run as root (PostgreSQL refuses to run as root).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use crate::TestkitError;

/// Name of the OS user created to run servers when no `postgres` user exists.
pub const FALLBACK_SERVER_USER: &str = "pgwalstream";

/// Who runs the server processes.
#[derive(Debug, Clone)]
pub(crate) enum ServerUser {
    /// The current (unprivileged) user runs them directly.
    Current,
    /// We are root: commands run through `runuser` as this user.
    Other { name: String, uid: u32, gid: u32 },
}

impl ServerUser {
    /// The user that runs servers, created on first use when the process is root.
    pub(crate) fn get() -> Result<&'static ServerUser, TestkitError> {
        static USER: OnceLock<ServerUser> = OnceLock::new();
        static DETECTING: Mutex<()> = Mutex::new(());
        if let Some(user) = USER.get() {
            return Ok(user);
        }
        // One thread at a time may create the user.
        let _guard = DETECTING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(user) = USER.get() {
            return Ok(user);
        }
        let user = Self::detect()?;
        Ok(USER.get_or_init(|| user))
    }

    fn detect() -> Result<ServerUser, TestkitError> {
        if current_uid()? != 0 {
            return Ok(ServerUser::Current);
        }
        for name in ["postgres", FALLBACK_SERVER_USER] {
            if let Some((uid, gid)) = lookup_user(name)? {
                return Ok(ServerUser::Other {
                    name: name.to_owned(),
                    uid,
                    gid,
                });
            }
        }
        let mut useradd = Command::new("useradd");
        useradd.args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
        ]);
        useradd.arg(FALLBACK_SERVER_USER);
        run(&mut useradd)?;
        let (uid, gid) =
            lookup_user(FALLBACK_SERVER_USER)?.ok_or_else(|| TestkitError::CommandFailed {
                command: format!("useradd {FALLBACK_SERVER_USER}"),
                status: "0".into(),
                output: "the user does not exist after creating it".into(),
            })?;
        Ok(ServerUser::Other {
            name: FALLBACK_SERVER_USER.to_owned(),
            uid,
            gid,
        })
    }

    /// A command that runs `program` as this user.
    pub(crate) fn command(&self, program: &Path) -> Command {
        match self {
            ServerUser::Current => Command::new(program),
            ServerUser::Other { name, .. } => {
                let mut command = Command::new("runuser");
                command.arg("-u").arg(name).arg("--").arg(program);
                command
            }
        }
    }

    /// Gives `path` to this user (no-op when running unprivileged).
    pub(crate) fn give(&self, path: &Path) -> Result<(), TestkitError> {
        if let ServerUser::Other { uid, gid, .. } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(TestkitError::io("changing the owner of", path))?;
        }
        Ok(())
    }

    /// Whether this user can reach (traverse every parent of) `path`.
    pub(crate) fn can_traverse(&self, path: &Path) -> bool {
        let ServerUser::Other { uid, .. } = self else {
            return true;
        };
        use std::os::unix::fs::MetadataExt;
        path.ancestors()
            .skip(1)
            .all(|dir| match std::fs::metadata(dir) {
                Ok(meta) => meta.uid() == *uid || meta.permissions().mode() & 0o001 != 0,
                Err(_) => false,
            })
    }
}

/// Sets the permission bits of `path`.
pub(crate) fn chmod(path: &Path, mode: u32) -> Result<(), TestkitError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(TestkitError::io("changing the permissions of", path))
}

fn current_uid() -> Result<u32, TestkitError> {
    let output = run(Command::new("id").arg("-u"))?;
    parse_number(&output.stdout, "id -u")
}

fn lookup_user(name: &str) -> Result<Option<(u32, u32)>, TestkitError> {
    let uid = Command::new("id").arg("-u").arg(name).output();
    let gid = Command::new("id").arg("-g").arg(name).output();
    match (uid, gid) {
        (Ok(uid), Ok(gid)) if uid.status.success() && gid.status.success() => Ok(Some((
            parse_number(&uid.stdout, "id -u")?,
            parse_number(&gid.stdout, "id -g")?,
        ))),
        _ => Ok(None),
    }
}

fn parse_number(bytes: &[u8], command: &str) -> Result<u32, TestkitError> {
    let text = String::from_utf8_lossy(bytes);
    text.trim()
        .parse()
        .map_err(|_| TestkitError::CommandFailed {
            command: command.to_owned(),
            status: "0".into(),
            output: format!("unexpected output {text:?}"),
        })
}

/// Runs a command to completion; a non-zero exit is an error carrying its output.
pub(crate) fn run(command: &mut Command) -> Result<Output, TestkitError> {
    let line = describe(command);
    let output = command.output().map_err(|source| TestkitError::Spawn {
        command: line.clone(),
        source,
    })?;
    if output.status.success() {
        Ok(output)
    } else {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Err(TestkitError::CommandFailed {
            command: line,
            status: output.status.to_string(),
            output: tail(&text, 40),
        })
    }
}

/// The command line of `command`, for messages.
pub(crate) fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
