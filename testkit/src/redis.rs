//! [`RedisServer`]: a `redis-server` of the caller's own on a free port of 127.0.0.1, with its
//! data in a directory the caller chooses, and the little RESP client that talks to it.

use std::fmt;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::install;
use crate::process::{self, Log, StartError};

/// How long a start may take before it is an error: loading a big append-only file on a busy
/// machine is the slow case.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a graceful stop may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Read and write timeout of the RESP client: no test waits forever on a stuck server.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Read and write timeout of the probes of a starting server: short, since what answers may be
/// another program that never replies; a slow server is simply probed again.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A `redis-server` on 127.0.0.1, persisting to its directory with an append-only file
/// (`appendfsync everysec`, no RDB snapshots), so a [`restart`](Self::restart) after a
/// graceful [`stop`](Self::stop) keeps every key, and one after [`kill`](Self::kill) keeps all
/// but the last second of writes. Its output goes to `redis.log` in the directory.
///
/// Dropping it stops the server gracefully (see [`stop`](Self::stop)).
#[derive(Debug)]
pub struct RedisServer {
    program: PathBuf,
    dir: PathBuf,
    port: u16,
    log: Log,
    /// The running server; `None` after stop or kill.
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` (found by [`find_redis_server`](crate::find_redis_server):
    /// `WASQ_REDIS_SERVER`, else `PATH`) on a free port with its data in `dir` (created if
    /// missing), and returns once it answers PING.
    pub fn start(dir: &Path) -> Result<Self> {
        Self::start_with(&install::find_redis_server()?, dir)
    }

    /// [`start`](Self::start) with the `redis-server` at `program`.
    pub fn start_with(program: &Path, dir: &Path) -> Result<Self> {
        let dir = process::prepare_dir(dir)?;
        let log = Log::new(&dir, "redis.log");
        process::on_a_free_port(|port| {
            let mut server = Self {
                program: program.to_path_buf(),
                dir: dir.clone(),
                port,
                log: log.clone(),
                child: None,
            };
            server.spawn()?;
            Ok(server)
        })
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file its output goes to.
    pub fn log_path(&self) -> &Path {
        &self.log.path
    }

    /// The process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Sends one command (`["SET", "k", "v"]`) on a new connection and returns the reply; a
    /// Redis error reply is an `Ok(Reply::Error(..))`.
    pub fn command(&self, args: &[&str]) -> Result<Reply> {
        let mut connection = Connection::open(self.port, IO_TIMEOUT)?;
        connection.command(args)
    }

    /// Stops the server gracefully: `SHUTDOWN` (which flushes the append-only file), SIGTERM if
    /// that fails, SIGKILL if it still runs after 30 s; waits until it has exited. Does nothing
    /// when it is not running.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        // The server closes the connection instead of answering a SHUTDOWN that works.
        let asked = Connection::open(self.port, IO_TIMEOUT).and_then(|mut c| c.send(&["SHUTDOWN"]));
        if asked.is_ok() && process::wait_for_exit(&mut child, STOP_TIMEOUT)?.is_some() {
            return Ok(());
        }
        process::stop_child(&mut child, Some("TERM"), STOP_TIMEOUT)
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until it has exited. Writes
    /// of the last second may be lost.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            process::stop_child(&mut child, None, STOP_TIMEOUT)?;
        }
        Ok(())
    }

    /// Stops the server if it runs and starts it again on the same port and data directory;
    /// returns once it answers PING.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn().map_err(|error| match error {
            StartError::PortTaken(error) => error.context(format!(
                "port {} was taken by another process while Redis was down; start a new \
                 RedisServer instead",
                self.port
            )),
            StartError::Failed(error) => error,
        })
    }

    /// Starts the process on `self.port` and waits until it answers PING.
    fn spawn(&mut self) -> Result<(), StartError> {
        let (stdout, stderr) = self.log.stdio()?;
        let offset = self.log.len();
        let mut child = Command::new(&self.program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .args(["--save", "", "--daemonize", "no"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|error| {
                anyhow!(
                    "cannot start {} ({error}): install redis-server (`apt-get install \
                     redis-server`, or run `cargo xtask test`, which does) or set \
                     WASQ_REDIS_SERVER to its path",
                    self.program.display()
                )
            })?;
        let pid = child.id();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                let text = self.log.text_since(offset);
                let error = anyhow!(
                    "redis-server exited ({status}) before it answered on port {}; {}",
                    self.port,
                    self.log.tail()
                );
                return Err(if text.contains("Address already in use") {
                    StartError::PortTaken(error)
                } else {
                    StartError::Failed(error)
                });
            }
            match self.answers(pid) {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => {
                    let _ = process::stop_child(&mut child, None, STOP_TIMEOUT);
                    return Err(StartError::PortTaken(error));
                }
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = process::stop_child(&mut child, None, STOP_TIMEOUT);
                return Err(StartError::Failed(anyhow!(
                    "redis-server did not answer PING on port {} within {}s (the machine may \
                     be overloaded; try again); {}",
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

    /// Whether our server (process `pid`) answers PING on the port: `Ok(false)` while it is not
    /// listening or still loading its data, an error if another server answers there.
    fn answers(&self, pid: u32) -> Result<bool> {
        let Ok(mut connection) = Connection::open(self.port, PROBE_TIMEOUT) else {
            return Ok(false);
        };
        match connection.command(&["PING"]) {
            Ok(Reply::Status(pong)) if pong == "PONG" => {}
            _ => return Ok(false),
        }
        let info = match connection.command(&["INFO", "server"]) {
            Ok(Reply::Bulk(Some(info))) => String::from_utf8_lossy(&info).into_owned(),
            _ => return Ok(false),
        };
        if !info
            .lines()
            .any(|line| line.trim() == format!("process_id:{pid}"))
        {
            bail!("another Redis server answers on port {}", self.port);
        }
        Ok(true)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A reply of a Redis server (RESP2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR …`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3 abc`; `None` for the nil bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*2 …`; `None` for the nil array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a status or bulk reply.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Status(text) => Some(text.clone()),
            Self::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(text) => write!(f, "{text}"),
            Self::Error(text) => write!(f, "(error) {text}"),
            Self::Integer(n) => write!(f, "(integer) {n}"),
            Self::Bulk(None) | Self::Array(None) => write!(f, "(nil)"),
            Self::Bulk(Some(bytes)) => write!(f, "{:?}", String::from_utf8_lossy(bytes)),
            Self::Array(Some(items)) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
        }
    }
}

/// One RESP connection to 127.0.0.1.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(port: u16, timeout: Duration) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), timeout)
            .with_context(|| format!("cannot connect to Redis on 127.0.0.1:{port}"))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    fn command(&mut self, args: &[&str]) -> Result<Reply> {
        self.send(args)?;
        read_reply(&mut self.reader)
    }

    /// Writes a command as an array of bulk strings.
    fn send(&mut self, args: &[&str]) -> Result<()> {
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&request)?;
        Ok(())
    }
}

fn read_reply(reader: &mut BufReader<TcpStream>) -> Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        bail!("Redis closed the connection");
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at_checked(1).context("empty RESP line")?;
    let number = || -> Result<i64> {
        rest.parse()
            .with_context(|| format!("bad RESP length or integer {rest:?}"))
    };
    Ok(match kind {
        "+" => Reply::Status(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Integer(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Reply::Bulk(None),
            Ok(len) => {
                let mut bytes = vec![0; len + 2];
                reader.read_exact(&mut bytes)?;
                bytes.truncate(len);
                Reply::Bulk(Some(bytes))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Reply::Array(None),
            Ok(len) => Reply::Array(Some(
                (0..len)
                    .map(|_| read_reply(reader))
                    .collect::<Result<_>>()?,
            )),
        },
        _ => bail!("not a RESP reply: {line:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data directory and a started server; panics saying what to do when redis-server is
    /// missing.
    fn started() -> (tempfile::TempDir, RedisServer) {
        let program = crate::find_redis_server().unwrap_or_else(|e| panic!("{e:#}"));
        let dir = tempfile::tempdir().unwrap();
        let server = RedisServer::start_with(&program, dir.path()).unwrap();
        (dir, server)
    }

    fn get(server: &RedisServer, key: &str) -> Reply {
        server.command(&["GET", key]).unwrap()
    }

    #[test]
    fn answers_and_keeps_data_across_a_restart() {
        let (_dir, mut server) = started();
        assert!(server.url().starts_with("redis://127.0.0.1:"));
        let port = server.port();
        let set = server
            .command(&["SET", "greeting", "héllo\r\nworld"])
            .unwrap();
        assert_eq!(set, Reply::Status("OK".into()));
        assert_eq!(
            server.command(&["RPUSH", "list", "a", "b"]).unwrap(),
            Reply::Integer(2)
        );

        let first = server.pid();
        server.restart().unwrap();
        assert_ne!(server.pid(), first, "a new process");
        assert_eq!(server.port(), port);
        assert_eq!(
            get(&server, "greeting").as_text().unwrap(),
            "héllo\r\nworld"
        );
        assert_eq!(
            server.command(&["LRANGE", "list", "0", "-1"]).unwrap(),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"a".to_vec())),
                Reply::Bulk(Some(b"b".to_vec()))
            ]))
        );
        assert_eq!(get(&server, "missing"), Reply::Bulk(None));
        assert!(matches!(
            server.command(&["NOSUCHCOMMAND"]).unwrap(),
            Reply::Error(_)
        ));
    }

    #[test]
    fn kill_stops_it_at_once_and_restart_brings_it_back() {
        let (_dir, mut server) = started();
        server.kill().unwrap();
        assert!(!server.is_running());
        assert!(!process::port_answers(server.port()));
        server.restart().unwrap();
        assert!(server.is_running());
        assert_eq!(
            server.command(&["PING"]).unwrap(),
            Reply::Status("PONG".into())
        );
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
    fn two_servers_get_different_ports() {
        let (_a_dir, a) = started();
        let (_b_dir, b) = started();
        assert_ne!(a.port(), b.port());
        a.command(&["SET", "k", "a"]).unwrap();
        assert_eq!(get(&b, "k"), Reply::Bulk(None));
    }

    #[test]
    fn a_missing_program_says_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let error = RedisServer::start_with(Path::new("/nonexistent/redis-server"), dir.path())
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("apt-get install redis-server"),
            "{message}"
        );
    }
}
