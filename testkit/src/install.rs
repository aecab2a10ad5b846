//! Where the server binaries are ([`find_redis_server`], [`find_postgres_bin`],
//! [`find_moto_server`]: look, never install; for tests), and the installers `cargo xtask` runs
//! ([`ensure_redis`], [`ensure_postgres`], [`ensure_moto`]: install what is missing with apt-get
//! or pip, printing one line for each thing they install and why).
//!
//! An environment variable overrides each location, and an override that points nowhere is an
//! error rather than a silent fallback.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::process::{self, capture, env_path, find_in_path, is_executable};

/// The `redis-server` to run, overriding `PATH`.
pub const REDIS_SERVER_VAR: &str = "WASQ_REDIS_SERVER";
/// The directory of PostgreSQL's `initdb` and `postgres` (and `pg_ctl`, `psql`), overriding
/// `PATH` and `/usr/lib/postgresql/*/bin`.
pub const PG_BIN_VAR: &str = "WASQ_PG_BIN";
/// The `moto_server` to run, overriding the venv and `PATH`.
pub const MOTO_SERVER_VAR: &str = "WASQ_MOTO_SERVER";

/// Where Debian and Ubuntu put each PostgreSQL version's binaries: `/usr/lib/postgresql/15/bin`.
const DEBIAN_PG_LIB: &str = "/usr/lib/postgresql";

/// The venv `cargo xtask test` installs moto into: `target/test-venv` in the workspace.
pub fn default_venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")))
        .join("target/test-venv")
}

/// The `redis-server` to run: `$WASQ_REDIS_SERVER`, else the one in `PATH`.
pub fn find_redis_server() -> Result<PathBuf> {
    if let Some(path) = overridden(REDIS_SERVER_VAR, "redis-server")? {
        return Ok(path);
    }
    find_in_path("redis-server").context(
        "redis-server not found in PATH: run `cargo xtask test`, which installs it, or \
         `apt-get install redis-server`, or set WASQ_REDIS_SERVER to its path",
    )
}

/// The directory of `initdb` and `postgres`: `$WASQ_PG_BIN`, else where the `initdb` in `PATH`
/// really is, else the newest `/usr/lib/postgresql/VERSION/bin`.
pub fn find_postgres_bin() -> Result<PathBuf> {
    if let Some(dir) = env_path(PG_BIN_VAR) {
        if !has_postgres(&dir) {
            bail!(
                "WASQ_PG_BIN is {} but that directory has no initdb and postgres: point it to \
                 the directory of PostgreSQL's binaries, or unset it",
                dir.display()
            );
        }
        return Ok(dir);
    }
    // Through symlinks: /usr/local/bin/initdb may stand for /usr/lib/postgresql/15/bin/initdb,
    // and the directory we return must hold postgres too.
    let in_path = find_in_path("initdb")
        .and_then(|initdb| initdb.canonicalize().ok())
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        .filter(|dir| has_postgres(dir));
    in_path.or_else(debian_pg_bin).context(
        "PostgreSQL's initdb and postgres not found (in PATH or /usr/lib/postgresql/*/bin): \
         run `cargo xtask test`, which installs them, or `apt-get install postgresql`, or set \
         WASQ_PG_BIN to their directory",
    )
}

/// The `moto_server` to run: `$WASQ_MOTO_SERVER`, else the one in the venv of `cargo xtask test`
/// (`target/test-venv`), else the one in `PATH`.
pub fn find_moto_server() -> Result<PathBuf> {
    if let Some(path) = overridden(MOTO_SERVER_VAR, "moto_server")? {
        return Ok(path);
    }
    let venv = default_venv();
    Some(venv_moto(&venv))
        .filter(|path| is_executable(path))
        .or_else(|| find_in_path("moto_server"))
        .with_context(|| {
            format!(
                "moto_server not found (in {} or PATH): run `cargo xtask test`, which installs \
                 it there, or `pip install 'moto[server]'`, or set WASQ_MOTO_SERVER to its path",
                venv.display()
            )
        })
}

/// [`find_redis_server`], installing `redis-server` with apt-get when it is missing.
pub fn ensure_redis() -> Result<PathBuf> {
    if let Some(path) = overridden(REDIS_SERVER_VAR, "redis-server")? {
        return Ok(path);
    }
    if let Ok(path) = find_redis_server() {
        return Ok(path);
    }
    println!("installing redis-server (apt-get): the tests need a real Redis");
    apt_install(&["redis-server"])?;
    find_redis_server().context("apt-get installed redis-server, yet it is not in PATH")
}

/// tmux, installed with apt-get when missing: the `wasq monitor` test reads
/// its screen through tmux.
pub fn ensure_tmux() -> Result<PathBuf> {
    if let Some(path) = find_in_path("tmux") {
        return Ok(path);
    }
    println!("installing tmux (apt-get): the `wasq monitor` test drives it in a terminal");
    apt_install(&["tmux"])?;
    find_in_path("tmux").context("apt-get installed tmux, yet it is not in PATH")
}

/// Chromium and chromedriver (`chromium`, `chromium-driver`), installed
/// with apt-get when missing: the dashboard test drives a headless browser.
/// Answers their paths.
pub fn ensure_chromium() -> Result<(PathBuf, PathBuf)> {
    let found = || Some((find_in_path("chromium")?, find_in_path("chromedriver")?));
    if let Some(paths) = found() {
        return Ok(paths);
    }
    println!(
        "installing chromium and chromium-driver (apt-get): the dashboard test drives a headless browser"
    );
    apt_install(&["chromium", "chromium-driver"])?;
    found().context("apt-get installed chromium, yet chromium or chromedriver is not in PATH")
}

/// [`find_postgres_bin`], installing `postgresql` with apt-get when it is missing; when we are
/// root, also creates the user `postgres` the servers run as if it does not exist.
pub fn ensure_postgres() -> Result<PathBuf> {
    let bin = match find_postgres_bin() {
        Ok(bin) => bin,
        // A WASQ_PG_BIN that points nowhere is the user's to fix, not apt-get's.
        Err(error) if env_path(PG_BIN_VAR).is_some() => return Err(error),
        Err(_) => {
            println!("installing postgresql (apt-get): the tests need a real PostgreSQL");
            apt_install(&["postgresql"])?;
            find_postgres_bin().context("apt-get installed postgresql, yet initdb is not found")?
        }
    };
    if process::is_root() && postgres_user().is_err() {
        println!("creating the user postgres (useradd): PostgreSQL refuses to run as root");
        capture(
            Command::new("useradd")
                .args(["--system", "--user-group", "--no-create-home"])
                .args(["--shell", "/usr/sbin/nologin", "postgres"]),
        )
        .context(
            "cannot create the user postgres; create it yourself (`useradd --system postgres`)",
        )?;
        postgres_user()?;
    }
    Ok(bin)
}

/// [`find_moto_server`], but in the venv `venv`: creates the venv (`python3 -m venv`) when
/// missing and installs `moto[server]` into it with pip when its `moto_server` is missing. pip
/// sees the environment as it is (`PIP_INDEX_URL`, `PIP_FIND_LINKS`, proxies).
pub fn ensure_moto(venv: &Path) -> Result<PathBuf> {
    if let Some(path) = overridden(MOTO_SERVER_VAR, "moto_server")? {
        return Ok(path);
    }
    let moto = venv_moto(venv);
    if is_executable(&moto) {
        return Ok(moto);
    }
    let python = venv.join("bin/python");
    if !is_executable(&python) || !pip_works(&python) {
        create_venv(venv)?;
    }
    println!(
        "installing moto[server] (pip, into {}): the tests need a real SQS endpoint",
        venv.display()
    );
    capture(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
            ])
            .arg("moto[server]"),
    )
    .context(
        "pip could not install moto[server]: check network access to PyPI (or set PIP_INDEX_URL / \
         PIP_FIND_LINKS), or install it yourself and set WASQ_MOTO_SERVER",
    )?;
    if !is_executable(&moto) {
        bail!(
            "pip installed moto[server] but {} is missing: remove {} and try again",
            moto.display(),
            venv.display()
        );
    }
    Ok(moto)
}

/// The python of the venv `venv` with the packages of `requirements` (a pip requirements file)
/// installed: creates the venv when missing and runs `pip install -r` when the file changed
/// since the last install (a copy of it is kept in the venv), printing why.
pub fn ensure_venv_requirements(venv: &Path, requirements: &Path, why: &str) -> Result<PathBuf> {
    let wanted = fs::read_to_string(requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let python = venv.join("bin/python");
    let installed = venv.join("wasq-requirements.txt");
    if is_executable(&python) && fs::read_to_string(&installed).is_ok_and(|have| have == wanted) {
        return Ok(python);
    }
    if !is_executable(&python) || !pip_works(&python) {
        create_venv(venv)?;
    }
    println!(
        "installing {} (pip, into {}): {why}",
        requirements.display(),
        venv.display()
    );
    capture(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                "-r",
            ])
            .arg(requirements),
    )
    .with_context(|| {
        format!(
            "pip could not install {}: check network access to PyPI (or set PIP_INDEX_URL / \
             PIP_FIND_LINKS)",
            requirements.display()
        )
    })?;
    fs::write(&installed, wanted)
        .with_context(|| format!("cannot write {}", installed.display()))?;
    Ok(python)
}

/// The user and group ids of `postgres`, whom the servers run as when we are root.
pub(crate) fn postgres_user() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = capture(Command::new("id").args([flag, "postgres"])).context(
            "PostgreSQL refuses to run as root, and there is no user postgres to run it as: run \
             `cargo xtask test`, which creates it, or `useradd --system postgres`",
        )?;
        out.trim().parse().context("`id` printed no number")
    };
    Ok((id("-u")?, id("-g")?))
}

/// The path in `$var` when set: it must be an executable `name`.
fn overridden(var: &str, name: &str) -> Result<Option<PathBuf>> {
    let Some(path) = env_path(var) else {
        return Ok(None);
    };
    if !is_executable(&path) {
        bail!(
            "{var} is {} but that is not an executable file: point it to {name}, or unset it",
            path.display()
        );
    }
    Ok(Some(path))
}

fn venv_moto(venv: &Path) -> PathBuf {
    venv.join("bin/moto_server")
}

fn has_postgres(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

/// The newest `/usr/lib/postgresql/VERSION/bin` with initdb and postgres.
fn debian_pg_bin() -> Option<PathBuf> {
    let version = |name: &str| -> Option<Vec<u32>> {
        name.split('.').map(|part| part.parse().ok()).collect()
    };
    fs::read_dir(DEBIAN_PG_LIB)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let number = version(entry.file_name().to_str()?)?;
            Some((number, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_postgres(bin))
        .max()
        .map(|(_, bin)| bin)
}

fn pip_works(python: &Path) -> bool {
    Command::new(python)
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `python3 -m venv VENV`, installing python3 and its venv module with apt-get when that fails
/// (Debian ships `venv` without `ensurepip` unless `python3-venv` is installed).
fn create_venv(venv: &Path) -> Result<()> {
    println!(
        "creating the Python venv {} (python3 -m venv)",
        venv.display()
    );
    if try_create_venv(venv).is_ok() {
        return Ok(());
    }
    println!("installing python3-venv (apt-get): python3 cannot create the venv moto needs");
    apt_install(&["python3", "python3-venv"])?;
    try_create_venv(venv).context(
        "cannot create a Python venv even after installing python3-venv: install Python 3 with \
         its venv module (or set WASQ_MOTO_SERVER to a moto_server for the tests)",
    )
}

fn try_create_venv(venv: &Path) -> Result<()> {
    // A venv a failed attempt left without pip is replaced; anything else is not ours to delete.
    if venv.exists() {
        if !venv.join("pyvenv.cfg").is_file() {
            bail!(
                "{} exists but is not a Python venv: remove it and try again",
                venv.display()
            );
        }
        fs::remove_dir_all(venv).with_context(|| format!("cannot remove {}", venv.display()))?;
    }
    if let Some(parent) = venv.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let python = find_in_path("python3").context("python3 is not in PATH")?;
    capture(Command::new(python).args(["-m", "venv"]).arg(venv))?;
    if !pip_works(&venv.join("bin/python")) {
        bail!("the new venv {} has no pip", venv.display());
    }
    Ok(())
}

/// `apt-get install -y PACKAGES` (through sudo unless we are root), quietly; when it fails,
/// `apt-get update` and once more, since a stale or missing package list is the usual cause.
fn apt_install(packages: &[&str]) -> Result<()> {
    let install = || {
        apt_get(
            &["install", "-y", "-q", "--no-install-recommends"],
            packages,
        )
    };
    if install().is_ok() {
        return Ok(());
    }
    println!("apt-get install failed; updating the package lists (apt-get update) and retrying");
    apt_get(&["update", "-q"], &[])?;
    install().with_context(|| {
        format!(
            "apt-get could not install {}: install it yourself (see the error above), or point \
             WASQ_REDIS_SERVER / WASQ_PG_BIN / WASQ_MOTO_SERVER to existing binaries",
            packages.join(" ")
        )
    })
}

fn apt_get(args: &[&str], packages: &[&str]) -> Result<()> {
    let mut command = if process::is_root() {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("apt-get");
        sudo
    };
    command
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(args)
        .args(packages);
    capture(&mut command).map(drop).with_context(|| {
        if find_in_path("apt-get").is_none() {
            "this machine has no apt-get: install the package with its package manager".into()
        } else {
            format!("apt-get {} failed", args.first().unwrap_or(&""))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_venv_is_in_the_workspace_target() {
        let venv = default_venv();
        assert!(venv.ends_with("target/test-venv"), "{}", venv.display());
        assert!(
            venv.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("Cargo.toml")
                .is_file()
        );
    }

    #[test]
    fn postgres_binaries_are_found() {
        let bin = find_postgres_bin().unwrap_or_else(|e| panic!("{e:#}"));
        assert!(has_postgres(&bin), "{}", bin.display());
    }
}
