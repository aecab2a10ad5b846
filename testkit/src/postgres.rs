//! [`PostgresServer`]: a PostgreSQL cluster of the caller's own (`initdb` + `postgres`) on a free
//! port of 127.0.0.1, in a directory the caller chooses, with a database `wasq` that user `wasq`
//! reaches without a password; and the few words of the wire protocol that check it is up.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::install;
use crate::process::{self, Log, StartError};

/// How long `initdb` plus the first start may take before it is an error.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Read and write timeout of the protocol client.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The role `initdb` creates as superuser, and the database the server is started with.
const USER: &str = "wasq";
const DATABASE: &str = "wasq";

/// The longest path of a Unix socket (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A PostgreSQL server on 127.0.0.1, tuned for tests rather than durability (`fsync`,
/// `synchronous_commit` and `full_page_writes` off, 400 connections), with a `wasq` superuser
/// that needs no password (`trust`) and a `wasq` database.
///
/// Layout of its directory: `data/` (the cluster), `postgres.log` and `initdb.log` (output),
/// and the Unix socket (`.s.PGSQL.PORT`, not in `/var/run/postgresql`, which may not exist).
/// Starting on a directory that already holds a cluster reuses it.
///
/// PostgreSQL refuses to run as root: when this process is root, `initdb` and `postgres` run as
/// the user `postgres`, who is given the directory.
///
/// Dropping it stops the server (fast shutdown, see [`stop`](Self::stop)).
#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    log: Log,
    /// The user and group to run as, when we are root.
    run_as: Option<(u32, u32)>,
    /// The running postmaster; `None` after stop or kill.
    child: Option<Child>,
}

impl PostgresServer {
    /// Starts PostgreSQL (binaries found by [`find_postgres_bin`](crate::find_postgres_bin):
    /// `WASQ_PG_BIN`, else `initdb` in `PATH`, else the newest `/usr/lib/postgresql/*/bin`) on a
    /// free port with its cluster in `dir` (created, and `initdb` run, if missing); returns once
    /// it accepts connections and database `wasq` exists.
    pub fn start(dir: &Path) -> Result<Self> {
        Self::start_with(&install::find_postgres_bin()?, dir)
    }

    /// [`start`](Self::start) with the binaries in `bin` (the directory of `initdb` and
    /// `postgres`).
    pub fn start_with(bin: &Path, dir: &Path) -> Result<Self> {
        let dir = process::prepare_dir(dir)?;
        let run_as = if process::is_root() {
            let ids = install::postgres_user()?;
            give_to(&dir, ids)?;
            Some(ids)
        } else {
            None
        };
        let log = Log::new(&dir, "postgres.log");
        let server = process::on_a_free_port(|port| {
            let mut server = Self {
                bin: bin.to_path_buf(),
                dir: dir.clone(),
                port,
                log: log.clone(),
                run_as,
                child: None,
            };
            server.initdb()?;
            server.spawn()?;
            Ok(server)
        })?;
        server.create_database()?;
        Ok(server)
    }

    /// `postgres://wasq@127.0.0.1:PORT/wasq`.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory (the cluster is in `data/` below it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of its binaries (`initdb`, `postgres`, and usually `psql`).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The file its output goes to.
    pub fn log_path(&self) -> &Path {
        &self.log.path
    }

    /// The process id of the running postmaster.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the postmaster is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Runs `sql` (one or more statements, simple query protocol) in `database` as `wasq` and
    /// returns the rows of the last statement as text (`None` for NULL).
    pub fn query(&self, database: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut connection = match Connection::open(self.port, database)? {
            Ok(connection) => connection,
            Err(error) => bail!("PostgreSQL refused the connection: {error}"),
        };
        connection.query(sql)
    }

    /// Stops the server with a fast shutdown (SIGINT: sessions are ended, a checkpoint is
    /// written), SIGKILL if it still runs after 60 s; waits until it has exited. Does nothing
    /// when it is not running.
    pub fn stop(&mut self) -> Result<()> {
        match self.child.take() {
            Some(mut child) => process::stop_child(&mut child, Some("INT"), STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Stops the server with an immediate shutdown (SIGQUIT: no checkpoint, as after a crash;
    /// the next start runs recovery) and waits until it has exited. With `synchronous_commit`
    /// off, commits of the last fraction of a second may be lost; a test that needs them
    /// commits with `SET synchronous_commit = on`.
    pub fn kill(&mut self) -> Result<()> {
        match self.child.take() {
            Some(mut child) => process::stop_child(&mut child, Some("QUIT"), STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Stops the server if it runs and starts it again on the same port and directory; returns
    /// once it accepts connections.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn().map_err(|error| match error {
            StartError::PortTaken(error) => error.context(format!(
                "port {} was taken by another process while PostgreSQL was down; start a new \
                 PostgresServer instead",
                self.port
            )),
            StartError::Failed(error) => error,
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command for one of the binaries, run as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(&self.dir).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            // std drops the supplementary groups too when root changes uid.
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Creates the cluster in `data/` unless it exists.
    fn initdb(&self) -> Result<()> {
        let data = self.data();
        if data.join("PG_VERSION").is_file() {
            return Ok(());
        }
        let log = Log::new(&self.dir, "initdb.log");
        let (stdout, stderr) = log.stdio()?;
        let status = self
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "--auth=trust", "--no-sync", "--no-locale"])
            .args(["--encoding=UTF8", "--no-instructions"])
            .stdout(stdout)
            .stderr(stderr)
            .status()
            .map_err(|error| self.missing_binary("initdb", error))?;
        if !status.success() {
            bail!("initdb failed ({status}); {}", log.tail());
        }
        Ok(())
    }

    fn missing_binary(&self, program: &str, error: std::io::Error) -> anyhow::Error {
        anyhow!(
            "cannot run {} ({error}): install PostgreSQL (`apt-get install postgresql`, or run \
             `cargo xtask test`, which does) or set WASQ_PG_BIN to the directory of initdb and \
             postgres",
            self.bin.join(program).display()
        )
    }

    /// Starts the postmaster on `self.port` and waits until it is ready.
    fn spawn(&mut self) -> Result<(), StartError> {
        let (stdout, stderr) = self.log.stdio()?;
        let offset = self.log.len();
        let socket = self.dir.join(format!(".s.PGSQL.{}", self.port));
        // Without room for the socket path, no Unix socket: the tests use TCP.
        let socket_dir = if socket.as_os_str().len() <= MAX_SOCKET_PATH {
            self.dir.clone()
        } else {
            PathBuf::new()
        };
        let mut child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(socket_dir)
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=400"])
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|error| self.missing_binary("postgres", error))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                let text = self.log.text_since(offset);
                let error = anyhow!(
                    "postgres exited ({status}) before it accepted connections on port {}; {}",
                    self.port,
                    self.log.tail()
                );
                return Err(if text.contains("Address already in use") {
                    StartError::PortTaken(error)
                } else {
                    StartError::Failed(error)
                });
            }
            if self.ready(child.id()) {
                match Connection::open(self.port, "postgres") {
                    Ok(Ok(_)) => break,
                    // Ready in its pid file but refusing: another server holds the port.
                    Ok(Err(refused)) if !refused.starting_up() => {
                        let _ = process::stop_child(&mut child, Some("QUIT"), STOP_TIMEOUT);
                        return Err(StartError::PortTaken(anyhow!(
                            "another server answers on port {}: {refused}",
                            self.port
                        )));
                    }
                    _ => {}
                }
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = process::stop_child(&mut child, Some("QUIT"), STOP_TIMEOUT);
                return Err(StartError::Failed(anyhow!(
                    "postgres did not accept connections on port {} within {}s (the machine \
                     may be overloaded; try again); {}",
                    self.port,
                    START_TIMEOUT.as_secs(),
                    self.log.tail()
                )));
            }
            std::thread::sleep(process::POLL);
        }
        self.child = Some(child);
        Ok(())
    }

    /// Whether `postmaster.pid` says postmaster `pid` is ready for connections (its first line
    /// is the pid, its eighth the state; what `pg_ctl start -w` reads too).
    fn ready(&self, pid: u32) -> bool {
        let Ok(text) = std::fs::read_to_string(self.data().join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        lines.first() == Some(&pid.to_string().as_str()) && lines.get(7) == Some(&"ready")
    }

    /// Creates database `wasq` unless it exists (it does after a restart).
    fn create_database(&self) -> Result<()> {
        let exists = self.query(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"),
        )?;
        if exists.is_empty() {
            self.query("postgres", &format!("CREATE DATABASE {DATABASE}"))
                .context("creating database wasq")?;
        }
        Ok(())
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Gives `dir` to the user `postgres` and makes sure that user can reach it: directories above
/// it inside the temporary directory (such as a 0700 `tempfile` directory) get the search bit
/// for others; elsewhere a directory closed to others is an error saying what to do.
fn give_to(dir: &Path, (uid, gid): (u32, u32)) -> Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .with_context(|| format!("cannot give {} to the user postgres", dir.display()))?;
    let temp = std::env::temp_dir().canonicalize().unwrap_or_default();
    for ancestor in dir.ancestors().skip(1) {
        let meta = ancestor
            .metadata()
            .with_context(|| format!("cannot read {}", ancestor.display()))?;
        let mode = meta.mode();
        let searchable = mode & 0o001 != 0
            || (meta.uid() == uid && mode & 0o100 != 0)
            || (meta.gid() == gid && mode & 0o010 != 0);
        if searchable {
            continue;
        }
        if ancestor.starts_with(&temp) && ancestor != temp {
            let mut permissions = meta.permissions();
            permissions.set_mode(mode | 0o001);
            std::fs::set_permissions(ancestor, permissions).with_context(|| {
                format!("cannot open {} to the user postgres", ancestor.display())
            })?;
        } else {
            bail!(
                "PostgreSQL runs as the user postgres (it refuses root), who cannot reach {}: \
                 {} is closed to others; `chmod o+x` it or use a directory under {}",
                dir.display(),
                ancestor.display(),
                temp.display()
            );
        }
    }
    Ok(())
}

/// An `ErrorResponse` of the server.
#[derive(Debug)]
struct Refused {
    code: String,
    message: String,
}

impl Refused {
    /// 57P03 cannot_connect_now: starting up, shutting down or in recovery.
    fn starting_up(&self) -> bool {
        self.code == "57P03"
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)
    }
}

/// A connection speaking protocol 3.0, as user `wasq` without a password.
struct Connection {
    stream: TcpStream,
}

impl Connection {
    /// Connects and logs in: `Ok(Err(..))` when the server refuses (starting up, no such
    /// database), `Err` when there is no server or it does not speak the protocol.
    fn open(port: u16, database: &str) -> Result<Result<Self, Refused>> {
        let mut stream =
            TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), IO_TIMEOUT)
                .with_context(|| format!("cannot connect to PostgreSQL on 127.0.0.1:{port}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut body = 196_608_i32.to_be_bytes().to_vec(); // protocol 3.0
        for (key, value) in [("user", USER), ("database", database)] {
            body.extend_from_slice(key.as_bytes());
            body.push(0);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        stream.write_all(&length_prefixed(None, &body))?;
        let mut connection = Self { stream };
        loop {
            let (kind, body) = connection.read_message()?;
            match kind {
                b'R' => {
                    let code = body
                        .get(..4)
                        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    if code != Some(0) {
                        bail!(
                            "PostgreSQL on port {port} asks for a password (authentication \
                             request {code:?}); the test server must use `trust`"
                        );
                    }
                }
                b'E' => return Ok(Err(refused(&body))),
                b'Z' => return Ok(Ok(connection)),
                // ParameterStatus, BackendKeyData, notices.
                _ => {}
            }
        }
    }

    /// Runs `sql` and returns the rows of the last statement as text.
    fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.stream.write_all(&length_prefixed(Some(b'Q'), &body))?;
        let mut rows = Vec::new();
        let mut failure = None;
        loop {
            let (kind, body) = self.read_message()?;
            match kind {
                // RowDescription: a new statement's rows begin.
                b'T' => rows.clear(),
                b'D' => rows.push(data_row(&body)?),
                b'E' => failure = Some(refused(&body)),
                b'Z' => break,
                _ => {}
            }
        }
        match failure {
            Some(refused) => bail!("PostgreSQL: {refused}"),
            None => Ok(rows),
        }
    }

    fn read_message(&mut self) -> Result<(u8, Vec<u8>)> {
        let mut header = [0; 5];
        self.stream
            .read_exact(&mut header)
            .context("PostgreSQL closed the connection")?;
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len = usize::try_from(len - 4).context("bad PostgreSQL message length")?;
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body)?;
        Ok((header[0], body))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Terminate, so the server does not log an unexpected EOF.
        let _ = self.stream.write_all(&length_prefixed(Some(b'X'), &[]));
    }
}

/// A message: its type byte (none for the startup message), its length, its body.
fn length_prefixed(kind: Option<u8>, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(body.len() + 5);
    message.extend(kind);
    let len = i32::try_from(body.len() + 4).unwrap_or(i32::MAX);
    message.extend_from_slice(&len.to_be_bytes());
    message.extend_from_slice(body);
    message
}

/// The fields of an ErrorResponse: `S`everity, `C`ode, `M`essage, each NUL-terminated.
fn refused(body: &[u8]) -> Refused {
    let mut refused = Refused {
        code: String::new(),
        message: String::new(),
    };
    for field in body.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let value = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => refused.code = value,
            b'M' => refused.message = value,
            _ => {}
        }
    }
    refused
}

/// A DataRow: a count of columns, then each as a length (-1 for NULL) and bytes.
fn data_row(body: &[u8]) -> Result<Vec<Option<String>>> {
    let mut rest = body;
    let mut take = |n: usize| -> Result<&[u8]> {
        let (head, tail) = rest
            .split_at_checked(n)
            .context("short PostgreSQL DataRow")?;
        rest = tail;
        Ok(head)
    };
    let count = u16::from_be_bytes(take(2)?.try_into()?);
    let mut row = Vec::with_capacity(count.into());
    for _ in 0..count {
        let len = i32::from_be_bytes(take(4)?.try_into()?);
        row.push(match usize::try_from(len) {
            Ok(len) => Some(String::from_utf8_lossy(take(len)?).into_owned()),
            Err(_) => None,
        });
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> (tempfile::TempDir, PostgresServer) {
        let bin = crate::find_postgres_bin().unwrap_or_else(|e| panic!("{e:#}"));
        let dir = tempfile::tempdir().unwrap();
        let server = PostgresServer::start_with(&bin, dir.path()).unwrap();
        (dir, server)
    }

    /// `psql URL -c SQL`, a real client reading the URL: its output without headers.
    fn psql(server: &PostgresServer, sql: &str) -> String {
        let psql = Some(server.bin().join("psql"))
            .filter(|p| process::is_executable(p))
            .unwrap_or_else(|| PathBuf::from("psql"));
        let out = Command::new(&psql)
            .arg(server.url())
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): install postgresql-client",
                    psql.display()
                )
            });
        assert!(
            out.status.success(),
            "psql -c {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn answers_and_keeps_data_across_a_restart() {
        let (_dir, mut server) = started();
        let port = server.port();
        assert_eq!(
            server.url(),
            format!("postgres://wasq@127.0.0.1:{port}/wasq")
        );
        psql(
            &server,
            "CREATE TABLE t (x int, y text); INSERT INTO t VALUES (42, 'kept'), (7, NULL)",
        );
        let first = server.pid();

        server.restart().unwrap();
        assert_ne!(server.pid(), first, "a new postmaster");
        assert_eq!(server.port(), port);
        assert_eq!(
            psql(&server, "SELECT x, y FROM t ORDER BY x DESC"),
            "42|kept\n7|"
        );
        assert_eq!(
            server
                .query("wasq", "SELECT x, y FROM t ORDER BY x")
                .unwrap(),
            vec![
                vec![Some("7".to_string()), None],
                vec![Some("42".to_string()), Some("kept".to_string())]
            ]
        );
        assert_eq!(
            psql(&server, "SHOW max_connections; SHOW fsync"),
            "400\noff"
        );
        let error = server
            .query("wasq", "SELECT * FROM nothing_here")
            .unwrap_err();
        assert!(format!("{error}").contains("42P01"), "{error}");
    }

    #[test]
    fn an_immediate_shutdown_recovers_committed_data() {
        let (_dir, mut server) = started();
        // The server commits asynchronously; this session waits for its commit to be written.
        let sql = "SET synchronous_commit = on; CREATE TABLE t (x int); INSERT INTO t VALUES (1)";
        server.query("wasq", sql).unwrap();
        server.kill().unwrap();
        assert!(!server.is_running());
        assert!(!process::port_answers(server.port()));
        server.restart().unwrap();
        assert_eq!(psql(&server, "SELECT count(*) FROM t"), "1");
    }

    #[test]
    fn a_restart_on_a_port_taken_meanwhile_says_so() {
        let (_dir, mut server) = started();
        server.stop().unwrap();
        let _squatter = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, server.port())).unwrap();
        let message = format!("{:#}", server.restart().unwrap_err());
        assert!(
            message.contains("was taken by another process"),
            "{message}"
        );
        assert!(message.contains("Address already in use"), "{message}");
    }

    #[test]
    fn drop_stops_it() {
        let (_dir, server) = started();
        let port = server.port();
        assert!(process::port_answers(port));
        drop(server);
        assert!(!process::port_answers(port), "port {port} still answers");
    }

    #[test]
    fn a_missing_binary_says_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let error = PostgresServer::start_with(Path::new("/nonexistent"), dir.path()).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("apt-get install postgresql"), "{message}");
    }

    #[test]
    fn data_rows_are_read() {
        let mut body = 2_u16.to_be_bytes().to_vec();
        body.extend_from_slice(&2_i32.to_be_bytes());
        body.extend_from_slice(b"hi");
        body.extend_from_slice(&(-1_i32).to_be_bytes());
        assert_eq!(data_row(&body).unwrap(), vec![Some("hi".into()), None]);
        assert!(data_row(&body[..5]).is_err());
    }
}
