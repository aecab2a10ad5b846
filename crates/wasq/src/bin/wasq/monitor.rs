//! `wasq monitor`: a live terminal view of the clusters, like Django Q2's
//! qmonitor — every cluster with its workers, the queues, and each running
//! task with its elapsed time and fuel budget, redrawn in place; `q`
//! quits.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use wasq::store::{ClusterStatus, now_ms};
use wasq::units::{format_duration, parse_duration};

use crate::cli_error::CliError;
use crate::settings::Settings;

/// Watch the clusters live: workers, queues and every running task with its
/// elapsed time, redrawn in place. Press q to quit.
#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    #[command(flatten)]
    settings: Settings,
    /// Time between redraws.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Draw once and exit (for scripts and logs).
    #[arg(long)]
    once: bool,
}

/// Restores the terminal when dropped.
struct Screen {
    saved: Option<rustix::termios::Termios>,
}

impl Screen {
    /// Raw keys and the alternate screen, when stdin and stdout are a
    /// terminal.
    fn open() -> Self {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() || !std::io::stdout().is_terminal() {
            return Self { saved: None };
        }
        let Ok(saved) = rustix::termios::tcgetattr(&stdin) else {
            return Self { saved: None };
        };
        let mut raw = saved.clone();
        raw.make_raw();
        // Keep output processing, so "\n" still returns the carriage.
        raw.output_modes |= rustix::termios::OutputModes::OPOST;
        if rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).is_err()
        {
            return Self { saved: None };
        }
        print!("\x1b[?1049h\x1b[?25l");
        let _ = std::io::stdout().flush();
        Self { saved: Some(saved) }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            print!("\x1b[?25h\x1b[?1049l");
            let _ = std::io::stdout().flush();
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

pub(crate) async fn monitor(args: MonitorArgs) -> Result<ExitCode, CliError> {
    let (config, client) = args.settings.client().await?;
    let (quit_tx, mut quit) = tokio::sync::mpsc::unbounded_channel::<()>();
    let screen = if args.once {
        None
    } else {
        Some(Screen::open())
    };
    if screen.as_ref().is_some_and(|s| s.saved.is_some()) {
        // Keys: q (or Ctrl-C, which raw mode delivers as a byte) quits.
        std::thread::spawn(move || {
            let mut byte = [0u8; 1];
            while let Ok(1) = std::io::stdin().read(&mut byte) {
                if matches!(byte[0], b'q' | b'Q' | 3) {
                    let _ = quit_tx.send(());
                    return;
                }
            }
        });
    } else {
        drop(quit_tx);
    }
    loop {
        let frame = draw(&config, &client).await;
        if args.once {
            print!("{frame}");
            return Ok(ExitCode::SUCCESS);
        }
        // Home, the frame with each line's rest cleared, then the rest of
        // the screen cleared.
        let mut out = String::from("\x1b[H");
        for line in frame.lines() {
            out.push_str(line);
            out.push_str("\x1b[K\n");
        }
        out.push_str("\x1b[J");
        print!("{out}");
        let _ = std::io::stdout().flush();
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = quit.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    drop(screen);
    Ok(ExitCode::SUCCESS)
}

/// One frame of the view.
async fn draw(config: &wasq::Config, client: &wasq::Client) -> String {
    let mut out = String::new();
    let now = now_ms();
    let at = wasq::schedule::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC");
    out.push_str(&format!(
        "wasq monitor  {at}  broker {}  (q quits)\n\n",
        wasq_brokers::redact(&config.broker)
    ));
    match client.store().clusters(Duration::from_secs(10)).await {
        Ok(clusters) => draw_clusters(&mut out, &clusters, now),
        Err(error) => out.push_str(&format!("clusters: cannot read the store: {error}\n")),
    }
    out.push('\n');
    let broker = client.broker();
    match broker.queues().await {
        Ok(queues) => {
            out.push_str(&format!("{:<40} {:>9}\n", "queue", "waiting"));
            let mut any = false;
            for queue in queues {
                if let Ok(size) = broker.queue_size(&queue).await {
                    out.push_str(&format!("{queue:<40} {size:>9}\n"));
                    any = true;
                }
            }
            if !any {
                out.push_str("(no queues yet)\n");
            }
        }
        Err(error) => out.push_str(&format!("queues: cannot reach the broker: {error}\n")),
    }
    out
}

fn draw_clusters(out: &mut String, clusters: &[ClusterStatus], now: i64) {
    if clusters.is_empty() {
        out.push_str("no cluster has reported in the last 10 s: start one with `wasq cluster`\n");
        return;
    }
    out.push_str(&format!(
        "{:<34} {:<14} {:>7} {:>6} {:>9} {:<9} {:>8}\n",
        "cluster", "host", "workers", "held", "done", "status", "up"
    ));
    for c in clusters {
        let up = Duration::from_millis((now - c.started_at_ms).max(0) as u64);
        out.push_str(&format!(
            "{:<34} {:<14} {:>7} {:>6} {:>9} {:<9} {:>8}\n",
            truncate(&c.id, 34),
            truncate(&c.host, 14),
            c.workers,
            c.in_flight,
            c.done,
            c.status,
            format_duration(Duration::from_secs(up.as_secs()))
        ));
    }
    let running: Vec<_> = clusters
        .iter()
        .flat_map(|c| c.running.iter().map(move |t| (c, t)))
        .collect();
    out.push('\n');
    if running.is_empty() {
        out.push_str("no task running\n");
        return;
    }
    out.push_str(&format!(
        "{:<34} {:<16} {:<16} {:<12} {:>9} {:>14}\n",
        "running task", "module", "task", "tenant", "elapsed", "fuel budget"
    ));
    for (_, task) in running {
        let elapsed = Duration::from_millis((now - task.started_at_ms).max(0) as u64);
        out.push_str(&format!(
            "{:<34} {:<16} {:<16} {:<12} {:>9} {:>14}\n",
            task.id,
            truncate(&task.module, 16),
            truncate(&task.task, 16),
            task.tenant.as_deref().unwrap_or("-"),
            format!("{:.1}s", elapsed.as_secs_f64()),
            task.fuel_limit
        ));
    }
}

fn truncate(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(most.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}
