//! Early write-back of the SQLite files while writes come in (Linux).
//!
//! With `synchronous=NORMAL` commits do not `fsync`: checkpoints sync the WAL and then the
//! database file. The background checkpointer copies frames into the database file but syncs it
//! only on a pass that reaches the end of the WAL, which under steady load only the writer's own
//! checkpoint does, between two groups. That `fsync` then wrote back every page copied since the
//! last one while no write could commit: 4 ms at the median and 6.8 ms at p90 on the benchmark
//! machine, the largest part of the writer's restart window (BENCHMARKS.md).
//!
//! While writes come in, this thread asks the kernel every millisecond to start writing out the
//! dirty pages of the database file and the WAL (`sync_file_range` with
//! `SYNC_FILE_RANGE_WRITE`, which starts write-out and waits for nothing), so the `fsync`s find
//! little left to write. Durability is unchanged: the kernel may write dirty pages out at any
//! time; what SQLite relies on are its own `fsync`s, and every one of them is still made.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often dirty pages are pushed out while writes come in.
const EVERY: Duration = Duration::from_millis(1);
/// How often to look for writes while there are none.
const IDLE: Duration = Duration::from_millis(50);
/// How often to check that the open files are still the ones at their paths (a WAL file is
/// removed when the last connection closes and made anew by the next writer).
const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// One file pushed out, reopened when its path names another file (or none).
struct Tracked {
    path: PathBuf,
    file: Option<File>,
}

impl Tracked {
    fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }

    fn refresh(&mut self) {
        let current = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let open = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| (m.dev(), m.ino()));
        if current != open {
            self.file = current.and_then(|_| File::open(&self.path).ok());
        }
    }

    /// Start write-out of the file's dirty pages (nothing while it is not open).
    fn push_out(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        // SAFETY: a system call on a descriptor this struct owns and keeps open; no memory is
        // passed. Offset 0 with length 0 means the whole file.
        let result =
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// Start the thread for the database at `path`; it pushes out while `busy` says writes come in
/// and ends when `alive` can no longer be upgraded.
pub(super) fn start(path: &str, busy: Arc<AtomicBool>, alive: Weak<()>) -> std::io::Result<()> {
    let mut files = [
        Tracked::new(PathBuf::from(path)),
        Tracked::new(PathBuf::from(format!("{path}-wal"))),
    ];
    std::thread::Builder::new()
        .name("sqlite-writeback".into())
        .spawn(move || {
            let mut checked: Option<Instant> = None;
            while alive.upgrade().is_some() {
                if !busy.load(Ordering::Relaxed) {
                    std::thread::sleep(IDLE);
                    continue;
                }
                if checked.is_none_or(|at| at.elapsed() >= REOPEN_CHECK) {
                    files.iter_mut().for_each(Tracked::refresh);
                    checked = Some(Instant::now());
                }
                for file in &files {
                    if let Err(e) = file.push_out() {
                        tracing::debug!(
                            error = %e,
                            file = %file.path.display(),
                            "starting write-out of a SQLite file failed"
                        );
                    }
                }
                std::thread::sleep(EVERY);
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn inode(tracked: &Tracked) -> Option<u64> {
        tracked.file.as_ref().map(|f| f.metadata().unwrap().ino())
    }

    #[test]
    fn write_out_starts_through_a_read_only_descriptor_and_follows_a_replaced_file() {
        let dir = std::env::temp_dir().join(format!("lineage-wb-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lineage.db-wal");
        let mut tracked = Tracked::new(path.clone());
        tracked.refresh();
        assert_eq!(inode(&tracked), None, "no file yet, nothing open");
        tracked.push_out().unwrap();

        std::fs::write(&path, [7; 8192]).unwrap();
        tracked.refresh();
        let first = inode(&tracked).expect("the new file is opened");
        tracked
            .push_out()
            .expect("write-out of dirty pages through a read-only descriptor");

        // Renamed over while the first is still open here, so the two cannot share an inode.
        std::fs::write(dir.join("next"), [8; 4096]).unwrap();
        std::fs::rename(dir.join("next"), &path).unwrap();
        tracked.refresh();
        let second = inode(&tracked).expect("the file now at the path is opened");
        assert_ne!(first, second);
        tracked.push_out().unwrap();

        std::fs::remove_file(&path).unwrap();
        tracked.refresh();
        assert_eq!(inode(&tracked), None, "a removed file is let go");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
