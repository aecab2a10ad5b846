//! The secret wasq generates for an embedded broker: 256 random bits, hex,
//! in a file only its owner can read (0600), created atomically so that
//! processes starting at once agree on one secret. A file wasq did not
//! make — a link, or one others can read or write — is refused.

use std::io::{self, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::Path;

/// A fresh secret: 32 random bytes, hex.
pub(crate) fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The secret in `path`, made first if there is none.
pub(crate) fn read_or_create(path: &Path) -> io::Result<String> {
    if let Some(found) = read(path)? {
        return Ok(found);
    }
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    // Written whole under a private name, then linked into place: the link
    // fails if another process got there first, and then its secret wins.
    let tmp = path.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        &random_secret()[..8]
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let secret = random_secret();
    let written = file
        .write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(secret),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            read(path)?.ok_or_else(|| io::Error::other("the secret file is empty"))
        }
        Err(error) => Err(error),
    }
}

/// The secret in `path`, if the file exists; an error if it is not a
/// private regular file of this user with a secret in it.
fn read(path: &Path) -> io::Result<Option<String>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    if !meta.file_type().is_file() {
        return Err(io::Error::other("it is not a regular file (a link?)"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(io::Error::other(
            "others can read or write it: `chmod 600` it, or remove it to make a new secret",
        ));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(io::Error::other("it belongs to another user"));
    }
    let text = std::fs::read_to_string(path)?;
    let secret = text.trim();
    if secret.len() < 32 {
        return Err(io::Error::other(
            "it holds no secret of at least 32 characters",
        ));
    }
    Ok(Some(secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_made_once_private_and_then_read_back() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("sub/secret");
        let first = read_or_create(&path).expect("made");
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("sub"))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(read_or_create(&path).expect("read"), first);
    }

    #[test]
    fn links_and_readable_files_are_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "x".repeat(64)).expect("written");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let link = dir.path().join("secret");
        std::os::unix::fs::symlink(&target, &link).expect("a link");
        assert!(read_or_create(&link).is_err());
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(read_or_create(&target).is_err());
    }
}
