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

/// Nests directories `d/d/d/…` in `/scratch`, `levels` deep, going down
/// one level at a time; stops at the first error (a quota stop ends the
/// task before that). Answers how deep it got.
#[task]
fn nest_dirs(levels: u32) -> Result<u32, String> {
    let mut path = std::path::PathBuf::from("/scratch");
    for level in 0..levels {
        path.push("d");
        if let Err(err) = std::fs::create_dir(&path) {
            return Err(format!("nesting stopped at level {level}: {err}"));
        }
    }
    Ok(levels)
}

/// Writes `/scratch/fill` in 1 MiB pieces until it holds `bytes` bytes.
#[task]
fn fill_scratch(bytes: u64) -> Result<u64, String> {
    use std::io::Write as _;
    let mut file = std::fs::File::create("/scratch/fill")
        .map_err(|err| format!("creating /scratch/fill failed: {err}"))?;
    let piece = vec![7u8; 1 << 20];
    let mut written = 0;
    while written < bytes {
        let n = piece
            .len()
            .min(usize::try_from(bytes - written).unwrap_or(usize::MAX));
        file.write_all(&piece[..n])
            .map_err(|err| format!("writing failed after {written} bytes: {err}"))?;
        written += n as u64;
    }
    Ok(written)
}

/// Creates `count` empty files in `/scratch`.
#[task]
fn many_files(count: u32) -> Result<u32, String> {
    for n in 0..count {
        std::fs::write(format!("/scratch/f{n}"), b"")
            .map_err(|err| format!("file {n} failed: {err}"))?;
    }
    Ok(count)
}

/// Sleeps `ms` milliseconds with a file in `/scratch` (a task to kill its
/// cluster under).
#[task]
fn hold_scratch(ms: u64) -> Result<(), String> {
    std::fs::write("/scratch/held", b"held")
        .map_err(|err| format!("writing /scratch/held failed: {err}"))?;
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(())
}

wasq_guest::main!(
    read_file,
    list_dir,
    env,
    connect,
    write_file,
    list_path,
    nest_dirs,
    fill_scratch,
    many_files,
    hold_scratch
);
