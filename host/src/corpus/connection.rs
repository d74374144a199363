//! SQLite connections opened and closed one at a time in this process.
//!
//! SQLite 3.51's unix VFS takes its global VFS mutex and then a file's inode mutex when it
//! opens a file (`findReusableFd`), and the other way round while a connection to a WAL
//! database closes (`sqlite3WalClose`): one thread opening a corpus while another closes a
//! connection to it can deadlock. That hung `corpus merge` (reader threads each opening and
//! closing read-only connections to a source) in CI, all three threads parked on those two
//! mutexes. Opening and closing are rare and cheap, so they go through one lock; so do ATTACH
//! and DETACH (an open and a close of a database file on an existing connection: a merge's
//! DETACH of a WAL source deadlocked against a reader thread opening that source), and a
//! connection's first read, which maps the WAL index of the file.

use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

static OPEN_CLOSE: Mutex<()> = Mutex::new(());

/// Runs `f` (an ATTACH or a DETACH) holding [`OPEN_CLOSE`].
pub(crate) fn serially<T>(f: impl FnOnce() -> T) -> T {
    let _one = OPEN_CLOSE.lock().unwrap_or_else(|e| e.into_inner());
    f()
}

/// Reads the schema (and so maps the WAL index) while the lock is held. A file that is not a
/// database fails here too; that error is left to the caller's first real use, which names
/// what it expected.
fn first_read(c: Connection) -> rusqlite::Result<SerialConnection> {
    let _ = c.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()));
    Ok(SerialConnection(ManuallyDrop::new(c)))
}

/// A connection whose opening and closing hold [`OPEN_CLOSE`].
pub struct SerialConnection(ManuallyDrop<Connection>);

impl SerialConnection {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let _one = OPEN_CLOSE.lock().unwrap_or_else(|e| e.into_inner());
        Connection::open(path).and_then(first_read)
    }

    pub fn open_with_flags(path: &Path, flags: OpenFlags) -> rusqlite::Result<Self> {
        let _one = OPEN_CLOSE.lock().unwrap_or_else(|e| e.into_inner());
        Connection::open_with_flags(path, flags).and_then(first_read)
    }
}

impl Deref for SerialConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl DerefMut for SerialConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0
    }
}

impl Drop for SerialConnection {
    fn drop(&mut self) {
        let _one = OPEN_CLOSE.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: dropped exactly once, here, and never used after.
        unsafe { ManuallyDrop::drop(&mut self.0) }
    }
}
