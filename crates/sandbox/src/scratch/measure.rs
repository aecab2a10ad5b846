//! A bounded walk of a scratch tree: says which quota it is over, if any.
//!
//! Iterative, fd-relative, never following a link. It stops at the first
//! quota exceeded, so its work is bounded by the quotas and not by what
//! the guest made: at most `entries` entries stat'ed and `depth` + 1
//! directories open at once (each level's listing stays open while the
//! walk is below it).
//!
//! Bytes are each non-directory's apparent size or its allocated blocks,
//! whichever is larger, so a sparse file counts at its full length.

use std::os::fd::BorrowedFd;

use rustix::fs::{AtFlags, Dir, FileType};
use rustix::io::Errno;

use super::fd::{is_dot, open_dir};
use crate::{ScratchLimits, ScratchQuota};

/// The first quota of `limits` the tree below `root` is over, if any.
/// Entries that vanish during the walk are skipped (the guest is still
/// running).
pub(crate) fn over(
    root: BorrowedFd<'_>,
    limits: &ScratchLimits,
) -> std::io::Result<Option<ScratchQuota>> {
    let mut stack = vec![Dir::read_from(root)?];
    let (mut bytes, mut entries) = (0u64, 0u64);
    loop {
        // Entries of /scratch itself are at depth 1.
        let depth = stack.len() as u64;
        let Some(dir) = stack.last_mut() else {
            break;
        };
        let Some(entry) = dir.read() else {
            stack.pop();
            continue;
        };
        let entry = match entry {
            Ok(entry) => entry,
            Err(Errno::NOENT) => {
                stack.pop();
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let name = entry.file_name();
        if is_dot(name) {
            continue;
        }
        entries += 1;
        if entries > limits.entries {
            return Ok(Some(ScratchQuota::Entries));
        }
        if depth > u64::from(limits.depth) {
            return Ok(Some(ScratchQuota::Depth));
        }
        let fd = dir.fd()?;
        let kind = match entry.file_type() {
            FileType::Unknown | FileType::RegularFile => None,
            kind => Some(kind),
        };
        if kind == Some(FileType::Directory) {
            match open_dir(fd, name) {
                Ok(sub) => stack.push(Dir::new(sub)?),
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        let stat = match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            match open_dir(fd, name) {
                Ok(sub) => stack.push(Dir::new(sub)?),
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        let blocks = u64::try_from(stat.st_blocks)
            .unwrap_or(0)
            .saturating_mul(512);
        bytes = bytes.saturating_add(size.max(blocks));
        if bytes > limits.bytes {
            return Ok(Some(ScratchQuota::Bytes));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd as _;

    fn limits(bytes: u64, entries: u64, depth: u32) -> ScratchLimits {
        ScratchLimits {
            bytes,
            entries,
            depth,
        }
    }

    fn measure(dir: &std::path::Path, limits: &ScratchLimits) -> Option<ScratchQuota> {
        let fd = std::fs::File::open(dir).unwrap();
        over(fd.as_fd(), limits).unwrap()
    }

    #[test]
    fn each_quota_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b/c")).unwrap();
        std::fs::write(dir.path().join("a/b/c/f"), vec![1u8; 8192]).unwrap();
        // 4 entries (a, b, c, f), depth 4, 8 KiB (and its blocks, at least).
        assert_eq!(measure(dir.path(), &limits(1 << 20, 4, 4)), None);
        assert_eq!(
            measure(dir.path(), &limits(8191, 4, 4)),
            Some(ScratchQuota::Bytes)
        );
        assert_eq!(
            measure(dir.path(), &limits(1 << 20, 3, 4)),
            Some(ScratchQuota::Entries)
        );
        assert_eq!(
            measure(dir.path(), &limits(1 << 20, 4, 3)),
            Some(ScratchQuota::Depth)
        );
    }

    #[test]
    fn a_sparse_file_counts_at_its_length_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("sparse")).unwrap();
        file.set_len(1 << 30).unwrap();
        assert_eq!(
            measure(dir.path(), &limits(1 << 20, 100, 4)),
            Some(ScratchQuota::Bytes)
        );
        std::fs::remove_file(dir.path().join("sparse")).unwrap();
        // A link to a big tree counts as one small entry.
        std::os::unix::fs::symlink("/usr", dir.path().join("usr")).unwrap();
        assert_eq!(measure(dir.path(), &limits(1 << 20, 1, 1)), None);
    }

    #[test]
    fn a_deep_tree_stops_the_walk_at_the_depth_limit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::write(&target, b"x").unwrap();
        super::super::remove::tests::deep_tree(dir.path(), "deep", 5_000, &target);
        let deep = dir.path().join("deep");
        assert_eq!(
            measure(&deep, &limits(u64::MAX, u64::MAX, 32)),
            Some(ScratchQuota::Depth)
        );
        super::super::remove::remove_path(&deep).unwrap();
    }
}
