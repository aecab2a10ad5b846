//! `escape.wasm`: tasks that try to leave the sandbox. Each one fails (a guest error, exit
//! code 1, saying what it tried and what it got back) while the sandbox holds, and returns
//! what it obtained if the attempt unexpectedly succeeds.

use std::collections::BTreeMap;

use wasq_guest::task;

/// Reads the host's `/etc/passwd`.
#[task]
fn read_file() -> Result<String, String> {
    std::fs::read_to_string("/etc/passwd")
        .map_err(|err| format!("reading /etc/passwd failed: {err}"))
}

/// Lists the host's root directory.
#[task]
fn list_dir() -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir("/").map_err(|err| format!("listing / failed: {err}"))?;
    entries
        .map(|entry| {
            entry
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .map_err(|err| format!("listing / failed midway: {err}"))
        })
        .collect()
}

/// Looks at the environment variables.
#[task]
fn env() -> Result<BTreeMap<String, String>, String> {
    let vars: BTreeMap<String, String> = std::env::vars_os()
        .map(|(key, value)| {
            (
                key.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let home = std::env::var_os("HOME");
    let path = std::env::var_os("PATH");
    if vars.is_empty() && home.is_none() && path.is_none() {
        Err(
            "no host environment visible: std::env::vars() is empty, HOME and PATH are unset"
                .to_owned(),
        )
    } else {
        Ok(vars)
    }
}

/// Opens a TCP connection to port 80 on the host's loopback.
#[task]
fn connect() -> Result<String, String> {
    let stream = std::net::TcpStream::connect("127.0.0.1:80")
        .map_err(|err| format!("connecting to 127.0.0.1:80 failed: {err}"))?;
    Ok(match stream.peer_addr() {
        Ok(peer) => format!("connected to {peer}"),
        Err(_) => "connected to 127.0.0.1:80".to_owned(),
    })
}

/// Writes a file at `path` and reads it back: succeeds only where a grant
/// (a scratch directory at `/scratch`) allows.
#[task]
fn write_file(path: String) -> Result<String, String> {
    std::fs::write(&path, b"written by escape.wasm")
        .map_err(|err| format!("writing {path} failed: {err}"))?;
    let back = std::fs::read_to_string(&path)
        .map_err(|err| format!("reading {path} back failed: {err}"))?;
    Ok(format!("wrote {path}: {back}"))
}

/// Lists the directory at `path`.
#[task]
fn list_path(path: String) -> Result<Vec<String>, String> {
    let entries =
        std::fs::read_dir(&path).map_err(|err| format!("listing {path} failed: {err}"))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

wasq_guest::main!(read_file, list_dir, env, connect, write_file, list_path);
