//! Scratch directories on the host: the per-task `/scratch` a module with
//! the `scratch` grant sees.
//!
//! Everything here treats the tree below a task's directory as hostile: a
//! guest can make it deep past any stack, wide, full of links. So every
//! walk is iterative (an explicit stack on the heap), fd-relative
//! (`openat`, `fstatat`, `unlinkat` from the directory above, never a path
//! from `/`) and never follows a link (`O_NOFOLLOW`).
//!
//! - `remove`: removal of a tree of any depth.
//! - `measure`: a bounded walk that says which quota a tree is over.
//! - [`root`]: each cluster's private root of task directories, locked
//!   while the cluster lives, and the sweep of dead clusters' roots.

mod fd;
pub(crate) mod measure;
pub(crate) mod remove;
pub mod root;

pub use root::{ScratchRoot, TaskDir};
