//! The reaper: a tiny shell process that stops a server and deletes its directory as soon as
//! the process that started it goes away, however it goes away (normal exit, panic, abort,
//! `SIGKILL`). It waits for end-of-file on a pipe whose only writer is the test process; the
//! kernel closes that pipe when the process dies. Signals sent to the whole process group
//! (Ctrl-C) are ignored by the reaper so that it survives to clean up.

use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::TestkitError;

const SCRIPT: &str = r#"trap '' INT TERM HUP
cat >/dev/null
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  kill -QUIT "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
  kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$1"
"#;

/// A running reaper for one server directory.
#[derive(Debug)]
pub(crate) struct Reaper {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Reaper {
    /// Starts a reaper that will clean up `root` (the server's top directory).
    pub(crate) fn spawn(root: &Path) -> Result<Reaper, TestkitError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("pg-walstream-reaper")
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| TestkitError::Spawn {
                command: "sh (reaper)".into(),
                source,
            })?;
        let pipe = child.stdin.take();
        Ok(Reaper { child, pipe })
    }

    /// Lets the reaper run now and waits until it has finished cleaning up.
    pub(crate) fn finish(mut self) {
        drop(self.pipe.take());
        let _ = self.child.wait();
    }
}
