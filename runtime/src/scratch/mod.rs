//! Scratch directories on the host: the per-task `/scratch` a module with
//! the `scratch` grant sees.
//!
//! Everything here treats the tree below a task's directory as hostile: a
//! guest can make it deep past any stack, wide, full of links. So every
//! walk is iterative (an explicit stack on the heap), fd-relative
//! (`openat`, `fstatat`, `unlinkat` from the directory above, never a path
//! from `/`) and never follows a link (`O_NOFOLLOW`).
//!
//! - [`remove`]: removal of a tree of any depth.
//! - [`measure`]: a bounded walk that says which quota a tree is over.
//! - [`root`]: each cluster's private root of task directories, locked
//!   while the cluster lives, and the sweep of dead clusters' roots.

pub(crate) mod measure;
pub(crate) mod remove;
mod root;

pub(crate) use root::{ScratchRoot, TaskDir};

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags};

/// Opens directory `name` in `dir` without following a link: a link, or
/// anything but a directory, is an error (`ELOOP`, `ENOTDIR`).
fn open_dir(dir: impl AsFd, name: &CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Whether `name` is `.` or `..`.
fn is_dot(name: &CStr) -> bool {
    matches!(name.to_bytes(), b"." | b"..")
}
