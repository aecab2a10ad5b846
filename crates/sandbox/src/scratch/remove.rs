//! Removing a tree of any depth without recursion and without following
//! links.
//!
//! The walk holds two directory descriptors at most: the directory it is
//! in and, for a moment, the one above. Going down it opens each
//! subdirectory from its parent with `O_NOFOLLOW | O_DIRECTORY`; coming
//! back up it opens `..` and checks it is the directory it came from
//! (device and inode), so a tree moved while it is removed stops the
//! removal instead of sending it elsewhere. The names still to visit wait
//! on the heap, one list per level. Paths are never built, so a tree
//! deeper than `PATH_MAX` (a guest can make one from deep descriptors) is
//! removed like any other.
//!
//! This blocks for as long as the tree takes: call it on a blocking thread
//! (`spawn_blocking`), never on an async worker.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
#[cfg(test)]
use std::path::Path;

#[cfg(test)]
use rustix::fs::Mode;
use rustix::fs::{AtFlags, Dir, FileType};
use rustix::io::Errno;

use super::fd::{is_dot, open_dir};

/// Why a tree could not be removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RemoveError {
    /// A system call failed.
    #[error("cannot remove {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The tree changed under the walk (a directory moved, or entries kept
    /// appearing): it was left as it is.
    #[error("the tree changed while it was removed")]
    Changed,
}

fn io(what: &'static str) -> impl FnOnce(Errno) -> RemoveError {
    move |errno| RemoveError::Io {
        what,
        source: errno.into(),
    }
}

/// How often a directory found not empty when it should be is listed
/// again before the removal gives up (something keeps writing into it).
const RELISTS: u32 = 8;

/// One directory on the way down.
struct Level {
    /// Its name in the directory above.
    name: CString,
    /// Its device and inode, to recognise it again through `..`.
    id: (u64, u64),
    /// Its subdirectories not removed yet.
    pending: Vec<CString>,
}

/// Removes `path` and everything below it; a missing `path` is no error.
/// The directories leading to `path` are trusted (they are ours); below
/// it nothing is.
#[cfg(test)]
pub(crate) fn remove_path(path: &Path) -> Result<(), RemoveError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(RemoveError::Io {
            what: "a path without a parent",
            source: std::io::ErrorKind::InvalidInput.into(),
        });
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = match rustix::fs::open(
        parent,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => dir,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io("its parent directory")(e)),
    };
    let name = CString::new(name.as_encoded_bytes()).map_err(|_| RemoveError::Io {
        what: "a name with a NUL",
        source: std::io::ErrorKind::InvalidInput.into(),
    })?;
    remove_tree(dir.as_fd(), &name)
}

/// Removes `name` in `parent` and, if it is a directory, everything below
/// it. A link is removed, never followed; a missing `name` is no error.
pub(crate) fn remove_tree(parent: BorrowedFd<'_>, name: &CStr) -> Result<(), RemoveError> {
    let mut current = match open_dir(parent, name) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(Errno::NOTDIR | Errno::LOOP) => return unlink_file(parent, name),
        Err(e) => return Err(io("the top directory")(e)),
    };
    let mut levels = vec![Level {
        name: name.to_owned(),
        id: id_of(&current)?,
        pending: list(&current)?,
    }];
    let mut relists = 0;
    loop {
        let Some(level) = levels.last_mut() else {
            return Ok(());
        };
        if let Some(child) = level.pending.pop() {
            match open_dir(&current, &child) {
                Ok(fd) => {
                    levels.push(Level {
                        id: id_of(&fd)?,
                        pending: list(&fd)?,
                        name: child,
                    });
                    current = fd;
                }
                Err(Errno::NOENT) => {}
                // Listed as a directory, now something else.
                Err(Errno::NOTDIR | Errno::LOOP) => unlink_file(current.as_fd(), &child)?,
                Err(e) => return Err(io("a directory")(e)),
            }
            continue;
        }
        // Everything below this level is gone: go up and remove it.
        let Some(done) = levels.pop() else {
            return Ok(());
        };
        let Some(above) = levels.last_mut() else {
            // The top, removed from `parent`.
            match rustix::fs::unlinkat(parent, &done.name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => return Ok(()),
                Err(Errno::NOTEMPTY) if relists < RELISTS => {
                    relists += 1;
                    levels.push(Level {
                        pending: list(&current)?,
                        ..done
                    });
                    continue;
                }
                Err(Errno::NOTEMPTY) => return Err(RemoveError::Changed),
                Err(e) => return Err(io("the top directory")(e)),
            }
        };
        let up = open_dir(&current, c"..").map_err(io("the way back up"))?;
        if id_of(&up)? != above.id {
            return Err(RemoveError::Changed);
        }
        current = up;
        match rustix::fs::unlinkat(&current, &done.name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::NOTEMPTY) if relists < RELISTS => {
                // Something appeared in it: visit it again.
                relists += 1;
                above.pending.push(done.name);
            }
            Err(Errno::NOTEMPTY) => return Err(RemoveError::Changed),
            Err(e) => return Err(io("a directory")(e)),
        }
    }
}

/// Unlinks every entry of `dir` that is not a directory, and returns the
/// names of its subdirectories.
fn list(dir: &OwnedFd) -> Result<Vec<CString>, RemoveError> {
    let mut subdirs = Vec::new();
    let entries = Dir::read_from(dir).map_err(io("a directory listing"))?;
    for entry in entries {
        let entry = entry.map_err(io("a directory listing"))?;
        let name = entry.file_name();
        if is_dot(name) {
            continue;
        }
        let kind = match entry.file_type() {
            FileType::Unknown => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => FileType::from_raw_mode(stat.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(io("an entry")(e)),
            },
            kind => kind,
        };
        if kind == FileType::Directory {
            subdirs.push(name.to_owned());
        } else {
            unlink_file(dir.as_fd(), name)?;
        }
    }
    Ok(subdirs)
}

/// Unlinks a file, link or other non-directory; a missing one is no error.
fn unlink_file(dir: BorrowedFd<'_>, name: &CStr) -> Result<(), RemoveError> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io("a file")(e)),
    }
}

/// A directory's device and inode.
fn id_of(dir: &OwnedFd) -> Result<(u64, u64), RemoveError> {
    let stat = rustix::fs::fstat(dir).map_err(io("a directory"))?;
    Ok((stat.st_dev, stat.st_ino))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rustix::fs::OFlags;

    /// Makes `levels` nested directories `d` under `dir/name`, fd-relative
    /// (the path is far past `PATH_MAX`), with a file at every hundredth
    /// level and a link to `target` at the bottom.
    pub(crate) fn deep_tree(dir: &Path, name: &str, levels: usize, target: &Path) {
        let top = dir.join(name);
        std::fs::create_dir(&top).unwrap();
        let mut fd = rustix::fs::open(
            &top,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        for level in 0..levels {
            if level % 100 == 0 {
                let file = rustix::fs::openat(
                    &fd,
                    c"f",
                    OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .unwrap();
                rustix::io::write(&file, b"data").unwrap();
            }
            rustix::fs::mkdirat(&fd, c"d", Mode::from_raw_mode(0o700)).unwrap();
            fd = open_dir(&fd, c"d").unwrap();
        }
        rustix::fs::symlinkat(target, &fd, c"link").unwrap();
    }

    #[test]
    fn removes_a_tree_deeper_than_any_stack_and_no_link_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("outside.txt");
        std::fs::write(&target, b"keep me").unwrap();
        deep_tree(dir.path(), "tree", 20_000, &target);
        // A link at the top, to a directory outside: not followed.
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("tree/out")).unwrap();

        let started = std::time::Instant::now();
        remove_path(&dir.path().join("tree")).unwrap();
        eprintln!("removed 20,000 levels in {:?}", started.elapsed());

        assert!(!dir.path().join("tree").exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        assert!(outside.join("keep").exists());
    }

    #[test]
    fn removes_a_link_itself_and_a_missing_tree_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        remove_path(&link).unwrap();
        assert!(!link.exists() && target.join("keep").exists());
        remove_path(&dir.path().join("never")).unwrap();
    }

    #[test]
    fn removes_wide_trees() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("wide");
        for a in 0..30 {
            for b in 0..30 {
                let sub = top.join(format!("{a}/{b}"));
                std::fs::create_dir_all(&sub).unwrap();
                std::fs::write(sub.join("f"), b"x").unwrap();
            }
        }
        remove_path(&top).unwrap();
        assert!(!top.exists());
    }
}
