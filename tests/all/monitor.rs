//! `wasq monitor` in a real terminal (tmux): it shows the cluster and a
//! running task with its elapsed time, redraws, and quits on `q`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wasq_tests::{ClusterProcess, dir_with_module, eventually, wasq_bin, wasq_in};

/// tmux on a private socket; the server is killed when dropped.
struct Tmux {
    bin: String,
    socket: std::path::PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bin)
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "mon"]).stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn monitor_shows_a_running_task_and_quits_on_q() {
    let bin = std::env::var("WASQ_TEST_TMUX").unwrap_or_else(|_| "tmux".into());
    let dir = dir_with_module("basics");
    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "2"], &[]);
    let run = wasq_in(
        dir.path(),
        &["enqueue", "basics", "sleep", "--args", "[30000]"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let id = run.stdout.trim().to_owned();

    let tmux = Tmux {
        bin,
        socket: dir.path().join("tmux.sock"),
    };
    let command = format!(
        "cd {} && WASQ_CACHE_DIR={} {} monitor --interval 200ms",
        shell_quote(dir.path()),
        shell_quote(&dir.path().join(".cache")),
        shell_quote(&wasq_bin())
    );
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "mon",
        "-x",
        "160",
        "-y",
        "40",
        &command,
    ]);
    assert!(started.status.success(), "tmux: {started:?}");

    let screen = eventually(
        Duration::from_secs(30),
        "the running task on screen",
        || {
            let screen = tmux.screen();
            (screen.contains(&id) && screen.contains("sleep")).then_some(screen)
        },
    );
    assert!(screen.contains("wasq monitor"), "{screen}");
    assert!(screen.contains("running"), "{screen}");
    // It redraws in place: the elapsed time of the task moves on.
    let elapsed = |screen: &str| -> Option<f64> {
        let line = screen.lines().find(|l| l.starts_with(&id))?;
        line.split_whitespace()
            .find_map(|w| w.strip_suffix('s')?.parse::<f64>().ok())
    };
    let first = elapsed(&screen).expect("an elapsed time");
    eventually(
        Duration::from_secs(30),
        "the elapsed time to move on",
        || elapsed(&tmux.screen()).filter(|e| *e > first),
    );

    assert!(tmux.run(&["send-keys", "-t", "mon", "q"]).status.success());
    eventually(Duration::from_secs(10), "the monitor to quit on q", || {
        (!tmux.run(&["has-session", "-t", "mon"]).status.success()).then_some(())
    });
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
