//! Each cluster's private root of scratch directories.
//!
//! A cluster makes a fresh directory `wasq-scratch-<random>` (mode 0700)
//! under `scratch_dir` or the system temp dir. `mkdir` fails on anything
//! already there, so a link or directory someone planted at a name they
//! guessed is never used, and no one else can enter or rename what is in
//! it. While the cluster lives it holds an exclusive `flock` on `.lock`
//! inside; the kernel drops the lock when the process dies, however it
//! dies. At start each cluster sweeps the sibling roots of its user whose
//! lock is free — what crashed clusters left — with the same safe remover
//! as task directories.
//!
//! Each task with the `scratch` grant gets a directory of its own inside
//! (0700), removed on a blocking thread when the task ends.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, Dir, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::fd::open_dir;
use super::remove::remove_tree;

/// The prefix of every cluster's root.
const PREFIX: &str = "wasq-scratch-";
/// The lock file in a root.
const LOCK: &std::ffi::CStr = c".lock";
/// A root without a lock file younger than this may be one being made
/// right now: the sweep leaves it.
const UNLOCKED_GRACE: Duration = Duration::from_secs(60);

/// A cluster's scratch root, locked while it lives and removed when it is
/// dropped.
#[derive(Debug)]
pub struct ScratchRoot {
    path: PathBuf,
    parent: PathBuf,
    name: CString,
    dir: OwnedFd,
    /// Held with an exclusive `flock` for the root's life.
    _lock: OwnedFd,
}

impl ScratchRoot {
    /// Makes this cluster's root in `parent` and sweeps, on a blocking
    /// thread, the roots dead clusters left there. `None` (with a warning)
    /// when the root cannot be made: scratch tasks are then handed back.
    pub fn for_cluster(parent: PathBuf) -> Option<Arc<Self>> {
        match Self::create(&parent) {
            Ok(root) => {
                let root = Arc::new(root);
                let sweeper = root.clone();
                tokio::task::spawn_blocking(move || {
                    let swept = sweeper.sweep();
                    if swept > 0 {
                        tracing::info!(swept, "removed scratch roots of dead clusters");
                    }
                });
                Some(root)
            }
            Err(error) => {
                tracing::warn!(%error, dir = %parent.display(), "cannot make a scratch root; tasks with the scratch grant will not run here");
                None
            }
        }
    }

    /// Makes a fresh, locked root in `parent`.
    pub fn create(parent: &Path) -> io::Result<Self> {
        let parent_fd = rustix::fs::open(
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut tries = 0;
        let name = loop {
            let name = format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 8]>()));
            match rustix::fs::mkdirat(&parent_fd, name.as_str(), Mode::from_raw_mode(0o700)) {
                Ok(()) => break name,
                Err(Errno::EXIST) if tries < 3 => tries += 1,
                Err(e) => return Err(e.into()),
            }
        };
        let name = CString::new(name).map_err(io::Error::other)?;
        let dir = open_dir(&parent_fd, &name)?;
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o700))?;
        let lock = rustix::fs::openat(
            &dir,
            LOCK,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive)?;
        Ok(Self {
            path: parent.join(name.to_string_lossy().as_ref()),
            parent: parent.to_owned(),
            name,
            dir,
            _lock: lock,
        })
    }

    /// Where the root is.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the sibling roots of this user whose lock no one holds;
    /// answers how many. Blocks: run it on a blocking thread.
    pub fn sweep(&self) -> usize {
        let sweep = || -> io::Result<usize> {
            let uid = rustix::fs::fstat(&self.dir)?.st_uid;
            let parent = rustix::fs::open(
                &self.parent,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let mut names = Vec::new();
            for entry in Dir::read_from(&parent)? {
                let entry = entry?;
                let name = entry.file_name();
                if name.to_bytes().starts_with(PREFIX.as_bytes()) && name != self.name.as_c_str() {
                    names.push(name.to_owned());
                }
            }
            let mut swept = 0;
            for name in names {
                match sweep_one(&parent, &name, uid) {
                    Ok(true) => swept += 1,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%error, root = %name.to_string_lossy(), "cannot sweep a scratch root");
                    }
                }
            }
            Ok(swept)
        };
        sweep().unwrap_or_else(|error| {
            tracing::warn!(%error, dir = %self.parent.display(), "cannot sweep scratch roots");
            0
        })
    }

    /// Makes a task's directory (0700) in the root.
    pub fn task_dir(self: &Arc<Self>, task_id: &str) -> io::Result<TaskDir> {
        // Only the id's plain characters, and a random part: the name is
        // ours whatever the id holds.
        let plain: String = task_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(40)
            .collect();
        let name = format!("{plain}-{}", hex::encode(rand::random::<[u8; 6]>()));
        rustix::fs::mkdirat(&self.dir, name.as_str(), Mode::from_raw_mode(0o700))?;
        let path = self.path.join(&name);
        Ok(TaskDir {
            root: self.clone(),
            name: CString::new(name).map_err(io::Error::other)?,
            path,
            removed: false,
        })
    }
}

impl Drop for ScratchRoot {
    fn drop(&mut self) {
        // Task directories are gone by now (each removes itself), so this
        // is quick.
        if let Ok(parent) = rustix::fs::open(
            &self.parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) && let Err(error) = remove_tree(parent.as_fd(), &self.name)
        {
            tracing::warn!(%error, dir = %self.path.display(), "cannot remove the scratch root");
        }
    }
}

/// Removes root `name` in `parent` if it is a directory of `uid` whose
/// lock is free; answers whether it did.
fn sweep_one(parent: &OwnedFd, name: &std::ffi::CStr, uid: u32) -> io::Result<bool> {
    let stat = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory || stat.st_uid != uid {
        return Ok(false);
    }
    let dir = open_dir(parent, name)?;
    let lock = match rustix::fs::openat(
        &dir,
        LOCK,
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(lock) => lock,
        Err(Errno::NOENT) => {
            let changed = SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(stat.st_mtime).unwrap_or(0));
            let young = SystemTime::now()
                .duration_since(changed)
                .is_ok_and(|age| age < UNLOCKED_GRACE);
            if young {
                return Ok(false);
            }
            return remove_tree(parent.as_fd(), name)
                .map(|()| true)
                .map_err(io::Error::other);
        }
        Err(e) => return Err(e.into()),
    };
    match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        // Its cluster is alive.
        Err(Errno::WOULDBLOCK) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    // Held until the tree is gone, so a second sweeper leaves it alone.
    let removed = remove_tree(parent.as_fd(), name).map_err(io::Error::other);
    drop(lock);
    removed.map(|()| true)
}

/// A task's scratch directory. Remove it with [`remove`](Self::remove)
/// once the task ends; dropped without that, it is removed on a blocking
/// thread in the background.
#[derive(Debug)]
pub struct TaskDir {
    root: Arc<ScratchRoot>,
    name: CString,
    path: PathBuf,
    removed: bool,
}

impl TaskDir {
    /// Where the directory is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory and everything in it, on a blocking thread.
    pub async fn remove(mut self) {
        self.removed = true;
        let (root, name) = (self.root.clone(), self.name.clone());
        let path = self.path.clone();
        let removed =
            tokio::task::spawn_blocking(move || remove_tree(root.dir.as_fd(), &name)).await;
        match removed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, dir = %path.display(), "cannot remove a scratch directory");
            }
            Err(error) => {
                tracing::warn!(%error, dir = %path.display(), "the scratch remover stopped");
            }
        }
    }
}

impl Drop for TaskDir {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let (root, name) = (self.root.clone(), self.name.clone());
        let remove = move || {
            if let Err(error) = remove_tree(root.dir.as_fd(), &name) {
                tracing::warn!(%error, "cannot remove a scratch directory");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            // No runtime: a thread of its own, never this one's stack.
            Err(_) => drop(std::thread::Builder::new().spawn(remove)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    #[tokio::test]
    async fn roots_are_private_fresh_and_swept_only_when_dead() {
        let parent = tempfile::tempdir().unwrap();
        let alive = ScratchRoot::create(parent.path()).unwrap();
        let mode = std::fs::metadata(alive.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        // A dead cluster's root: a lock file no one holds, and a tree.
        let dead = parent.path().join("wasq-scratch-dead");
        std::fs::create_dir_all(dead.join("task/a/b")).unwrap();
        std::fs::write(dead.join(".lock"), b"").unwrap();
        // A link planted with the prefix, to a directory that must survive.
        let victim = tempfile::tempdir().unwrap();
        std::fs::write(victim.path().join("keep"), b"x").unwrap();
        std::os::unix::fs::symlink(victim.path(), parent.path().join("wasq-scratch-link")).unwrap();

        let other = ScratchRoot::create(parent.path()).unwrap();
        assert_eq!(other.sweep(), 1);
        assert!(!dead.exists());
        assert!(alive.path().exists(), "a live cluster's root is left");
        assert!(victim.path().join("keep").exists());

        let root = Arc::new(alive);
        let task = root.task_dir("ab/../c").unwrap();
        let meta = std::fs::metadata(task.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert_eq!(meta.uid(), std::fs::metadata(parent.path()).unwrap().uid());
        assert!(task.path().parent() == Some(root.path()));
        let path = root.path().to_owned();
        let task_path = task.path().to_owned();
        task.remove().await;
        assert!(!task_path.exists());
        drop(other);
        // Dropping the root removes it.
        drop(root);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(parent.path()).unwrap().count(),
            1,
            "the planted link stays"
        );
    }
}
