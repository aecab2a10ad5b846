//! [`MotoServer`]: moto's server, a local AWS endpoint (the tests use its SQS), on a free port of
//! 127.0.0.1.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use crate::install;
use crate::process::{self, Log, StartError};

/// How long a start may take before it is an error: Python imports all of moto first, which
/// takes seconds on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the server gets to exit once killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `moto_server -H 127.0.0.1 -p PORT`, its output in `moto.log` in the directory. It keeps
/// everything in memory: there is nothing to restart.
///
/// Dropping it kills the server.
#[derive(Debug)]
pub struct MotoServer {
    program: PathBuf,
    port: u16,
    log: Log,
    /// The running server; `None` after stop.
    child: Option<Child>,
}

impl MotoServer {
    /// Starts moto's server (found by [`find_moto_server`](crate::find_moto_server):
    /// `WASQ_MOTO_SERVER`, else `moto_server` in `PATH`, else the venv `cargo xtask test`
    /// installs it in) on a free port, with its log in `dir` (created if missing); returns once
    /// it answers HTTP.
    pub fn start(dir: &Path) -> Result<Self> {
        Self::start_with(&install::find_moto_server()?, dir)
    }

    /// [`start`](Self::start) with the `moto_server` at `program`.
    pub fn start_with(program: &Path, dir: &Path) -> Result<Self> {
        let dir = process::prepare_dir(dir)?;
        let log = Log::new(&dir, "moto.log");
        process::on_a_free_port(|port| {
            let (stdout, stderr) = log.stdio()?;
            let offset = log.len();
            let mut child = Command::new(program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("PYTHONUNBUFFERED", "1")
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .map_err(|error| {
                    anyhow!(
                        "cannot start {} ({error}): run `cargo xtask test` (it installs moto \
                         into target/test-venv), or `pip install 'moto[server]'` and set \
                         WASQ_MOTO_SERVER to its moto_server",
                        program.display()
                    )
                })?;
            let started = Instant::now();
            loop {
                if let Some(status) = child.try_wait()? {
                    let error = anyhow!(
                        "moto_server exited ({status}) before it answered on port {port}; {}",
                        log.tail()
                    );
                    return Err(
                        if log.text_since(offset).contains("Address already in use") {
                            StartError::PortTaken(error)
                        } else {
                            StartError::Failed(error)
                        },
                    );
                }
                if http_answers(port) {
                    break;
                }
                if started.elapsed() > START_TIMEOUT {
                    let _ = process::stop_child(&mut child, None, STOP_TIMEOUT);
                    return Err(StartError::Failed(anyhow!(
                        "moto_server did not answer HTTP on port {port} within {}s (the machine \
                         may be overloaded; try again); {}",
                        START_TIMEOUT.as_secs(),
                        log.tail()
                    )));
                }
                std::thread::sleep(process::POLL);
            }
            Ok(Self {
                program: program.to_path_buf(),
                port,
                log: log.clone(),
                child: Some(child),
            })
        })
    }

    /// `http://127.0.0.1:PORT`, the endpoint URL for an AWS SDK.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `moto_server` it runs.
    pub fn program(&self) -> &Path {
        &self.program
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

    /// Kills the server (it keeps nothing worth a graceful stop) and waits until it has exited.
    pub fn stop(&mut self) -> Result<()> {
        match self.child.take() {
            Some(mut child) => process::stop_child(&mut child, None, STOP_TIMEOUT),
            None => Ok(()),
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Whether an HTTP server answers `GET /` on 127.0.0.1:`port`.
fn http_answers(port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1))
    else {
        return false;
    };
    // Short: what answers may be another program that never replies; a slow moto is simply
    // probed again.
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = format!("GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_sqs_and_drop_stops_it() {
        let program = crate::find_moto_server().unwrap_or_else(|e| panic!("{e:#}"));
        let dir = tempfile::tempdir().unwrap();
        let server = MotoServer::start_with(&program, dir.path()).unwrap();
        let port = server.port();
        assert_eq!(server.endpoint(), format!("http://127.0.0.1:{port}"));

        // SQS's query API, unsigned: moto does not check signatures.
        let body = "Action=CreateQueue&QueueName=testkit&Version=2012-11-05";
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        write!(
            stream,
            "POST / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("/testkit"), "{response}");

        drop(server);
        assert!(!process::port_answers(port), "port {port} still answers");
    }

    #[test]
    fn a_missing_program_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let error =
            MotoServer::start_with(Path::new("/nonexistent/moto_server"), dir.path()).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("cargo xtask test"), "{message}");
    }
}
