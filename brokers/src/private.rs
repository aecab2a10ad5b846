//! Files only their owner may read: wasq's SQLite databases hold task
//! arguments and results, tenants' keys and their modules' `env` grant
//! values, so they are made 0600 in directories wasq makes 0700, whatever
//! the umask says.

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Makes `dir` and its missing parents, each new one 0700. An existing
/// `dir` named `.wasq` (wasq's own, perhaps from an older version) is
/// made 0700 too; other existing directories are left as they are.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if dir.file_name().is_some_and(|name| name == ".wasq") {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates `path` empty if missing (0600; a link there is refused), and
/// makes it 0600 if it exists.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink()) {
        return Err(io::Error::other(format!(
            "{} is a symbolic link: wasq keeps its files only where it made them",
            path.display()
        )));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

/// Makes an SQLite database's files 0600: the database and, if they
/// exist, its `-wal` and `-shm` (SQLite gives them the database's mode,
/// so this matters only for files made by older versions).
pub fn tighten_sqlite_files(db: &Path) -> io::Result<()> {
    let mut paths = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        paths.push(name.into());
    }
    for path in paths {
        match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_dirs_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let wasq = dir.path().join("a/.wasq");
        create_private_dir(&wasq).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&wasq), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        let db = wasq.join("wasq.db");
        create_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::write(wasq.join("wasq.db-wal"), b"").unwrap();
        std::fs::set_permissions(
            wasq.join("wasq.db-wal"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        tighten_sqlite_files(&db).unwrap();
        assert_eq!(mode(&wasq.join("wasq.db-wal")), 0o600);
    }
}
