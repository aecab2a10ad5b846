//! [`FileWatch`]: cross-process wake-ups for the SQLite broker. On Linux an
//! inotify watch on the database's directory reports writes to the database
//! file and its write-ahead log, so a cluster waiting on an empty queue
//! takes a task another process enqueued within a millisecond, instead of at
//! its next poll. Writes that are not enqueues (results in the same file, a
//! heartbeat) wake it too; waking early is allowed, and it then dequeues
//! nothing and waits again. Elsewhere, or when inotify is unavailable, there
//! is no watch and the broker polls as before.

#[cfg(target_os = "linux")]
pub(crate) use linux::FileWatch;

/// Without inotify: never reports a change, so waits last their timeout.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub(crate) struct FileWatch;

#[cfg(not(target_os = "linux"))]
impl FileWatch {
    pub(crate) fn new(_database: &std::path::Path) -> Option<Self> {
        None
    }

    pub(crate) async fn changed(&self) {
        std::future::pending().await
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::{CString, OsStr};
    use std::mem::MaybeUninit;
    use std::os::unix::ffi::OsStrExt as _;
    use std::path::Path;

    use rustix::fd::OwnedFd;
    use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
    use rustix::io::Errno;
    use tokio::io::unix::AsyncFd;

    /// An inotify descriptor watching the directory of one database.
    #[derive(Debug)]
    pub(crate) struct FileWatch {
        fd: AsyncFd<OwnedFd>,
        /// `wasq.db`, `wasq.db-wal` and `wasq.db-journal`: the files whose
        /// writes mean the database changed.
        names: Vec<CString>,
    }

    impl FileWatch {
        /// A watch on the directory of `database`, or `None` where inotify
        /// cannot be had (no reactor, too many watches, an odd path).
        pub(crate) fn new(database: &Path) -> Option<Self> {
            let dir = match database.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let file = database.file_name()?;
            let names = ["", "-wal", "-journal"]
                .into_iter()
                .map(|suffix| {
                    let mut name = file.as_bytes().to_vec();
                    name.extend_from_slice(suffix.as_bytes());
                    CString::new(name).ok()
                })
                .collect::<Option<Vec<_>>>()?;
            let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
            inotify::add_watch(
                &fd,
                OsStr::new(dir),
                WatchFlags::MODIFY | WatchFlags::CREATE | WatchFlags::MOVED_TO,
            )
            .ok()?;
            #[expect(
                deprecated,
                reason = "`register`, its replacement, is unsafe; the contract both share (the \
                          descriptor stays open and the same while registered) holds for an \
                          `OwnedFd` moved into the `AsyncFd`"
            )]
            let fd = AsyncFd::new(fd).ok()?;
            Some(Self { fd, names })
        }

        /// Returns once the database was written since the last call
        /// (possibly before this one began). Cancel-safe. Should the
        /// descriptor fail, it never returns, and waits last their timeout.
        pub(crate) async fn changed(&self) {
            loop {
                let Ok(mut ready) = self.fd.readable().await else {
                    return std::future::pending().await;
                };
                let mut buffer = [MaybeUninit::<u8>::uninit(); 4096];
                let mut events = inotify::Reader::new(self.fd.get_ref(), &mut buffer);
                let mut written = false;
                loop {
                    match events.next() {
                        Ok(event) => {
                            written |= event.events().contains(ReadFlags::QUEUE_OVERFLOW)
                                || event
                                    .file_name()
                                    .is_some_and(|name| self.names.iter().any(|n| **n == *name));
                        }
                        Err(Errno::INTR) => {}
                        Err(Errno::AGAIN) => {
                            ready.clear_ready();
                            break;
                        }
                        Err(_) => return std::future::pending().await,
                    }
                }
                if written {
                    return;
                }
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_write_to_the_database_or_its_log_is_seen_and_other_files_are_not() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = dir.path().join("q.db");
        let watch = FileWatch::new(&db).expect("inotify works here");

        std::fs::write(dir.path().join("unrelated.txt"), b"x").expect("write");
        let quiet = tokio::time::timeout(Duration::from_millis(100), watch.changed()).await;
        assert!(quiet.is_err(), "another file's write is not a change");

        std::fs::write(dir.path().join("q.db-wal"), b"x").expect("write");
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("a write to the log is a change");

        // A write before the wait began is not missed.
        std::fs::write(&db, b"y").expect("write");
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("a write before the wait is seen");
        let quiet = tokio::time::timeout(Duration::from_millis(100), watch.changed()).await;
        assert!(quiet.is_err(), "each write is reported once");
    }
}
