//! Where audit rows go when the database cannot take them before the process ends: an
//! append-only local file of JSON lines, replayed at the next start.
//!
//! Rows are spilled only at shutdown (the writer's deadline passed with rows still
//! queued) and for a row that even its reduced form cannot store. Each write is flushed
//! and synced before the rows count as kept. Replay inserts with `ON CONFLICT
//! (request_id) DO NOTHING`, so a row written both to the database and to the file (a
//! commit whose answer was lost) is stored once, and a replay cut short can run again.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::audit_event::RequestEvent;

#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    /// Serialises appends from the writer and from rows that arrive after it stopped.
    lock: Mutex<()>,
    /// Rows appended (and synced) since start, for metrics.
    spilled: std::sync::atomic::AtomicU64,
}

impl Spill {
    pub fn new(path: PathBuf) -> Self {
        Self { path, lock: Mutex::new(()), spilled: Default::default() }
    }

    /// Rows this process has spilled so far.
    pub fn spilled(&self) -> u64 {
        self.spilled.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends rows and syncs the file. A failure here is the last resort failing: it is
    /// logged with every row's request id, so an operator can tell what is missing.
    pub fn append<'a>(&self, rows: impl IntoIterator<Item = &'a RequestEvent>) -> std::io::Result<usize> {
        let _guard = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut text = String::new();
        let mut ids = Vec::new();
        for row in rows {
            match serde_json::to_string(row) {
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                    ids.push(row.request_id.clone());
                }
                Err(e) => tracing::error!(request.id = %row.request_id, error = %e, "audit row could not be spilled"),
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let result = (|| {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
            file.write_all(text.as_bytes())?;
            file.sync_data()
        })();
        match result {
            Ok(()) => {
                self.spilled.fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(rows = ids.len(), file = %self.path.display(), "audit rows spilled to the local file");
                Ok(ids.len())
            }
            Err(e) => {
                tracing::error!(error = %e, file = %self.path.display(), request.ids = ?ids, "audit rows LOST: spill failed");
                Err(e)
            }
        }
    }

    /// Reads the rows spilled so far. Lines that cannot be read (a line cut short by a
    /// crash mid-append) are counted, not guessed at.
    pub fn read(&self) -> std::io::Result<(Vec<RequestEvent>, usize)> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(e),
        };
        let mut rows = Vec::new();
        let mut unreadable = 0;
        for line in std::io::BufReader::new(file).split(b'\n') {
            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<RequestEvent>(&line) {
                Ok(row) => rows.push(row),
                Err(_) => unreadable += 1,
            }
        }
        Ok((rows, unreadable))
    }

    /// Ends the file once its rows are in the database. A file with unreadable lines is
    /// kept beside it under a new name for a person to look at.
    pub fn finish_replay(&self, unreadable: usize) -> std::io::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if unreadable > 0 {
            let kept = self.path.with_extension(format!("unreadable-{}", uuid::Uuid::now_v7().simple()));
            tracing::error!(lines = unreadable, file = %kept.display(), "spilled audit lines could not be read; file kept");
            std::fs::rename(&self.path, kept)
        } else {
            match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }
}
