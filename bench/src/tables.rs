//! The results as tables: aligned text for the terminal and Markdown for BENCHMARKS.md, from
//! the same rows. Ratios compare every wasq system with every peer, workload by workload.

use std::fmt::Write as _;

use crate::report::{Results, Run};

/// A table: a header and rows of cells; the first column is left-aligned, the rest right.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) title: String,
    header: Vec<String>,
    rows: Vec<Row>,
}

#[derive(Debug, Clone)]
enum Row {
    Cells(Vec<String>),
    /// A first cell, then one message across the other columns (why a system did not run).
    Span(String, String),
}

impl Row {
    fn cell(&self, column: usize) -> Option<&str> {
        match self {
            Row::Cells(cells) => cells.get(column).map(String::as_str),
            Row::Span(first, _) => (column == 0).then_some(first.as_str()),
        }
    }
}

impl Table {
    fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<String>) {
        self.rows.push(Row::Cells(row));
    }

    /// A row that says why `label` has no figures.
    fn push_failure(&mut self, label: String, run: &Run) {
        self.rows.push(Row::Span(label, why(run)));
    }

    /// Columns padded to their widest cell.
    pub(crate) fn text(&self) -> String {
        let header = Row::Cells(self.header.clone());
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                std::iter::once(&header)
                    .chain(&self.rows)
                    .map(|row| row.cell(c).map_or(0, |cell| cell.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = format!("{}\n", self.title);
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::from(" ");
            for (c, width) in widths.iter().enumerate() {
                let cell = row.cell(c).unwrap_or("");
                match (row, c) {
                    (_, 0) => {
                        let _ = write!(line, " {cell:<width$}");
                    }
                    (Row::Span(_, message), 1) => {
                        let _ = write!(line, "  {message}");
                    }
                    (Row::Span(..), _) => {}
                    (Row::Cells(_), _) => {
                        let _ = write!(line, "  {cell:>width$}");
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// A Markdown table under a `###` heading.
    pub(crate) fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        let align: Vec<&str> = (0..self.header.len())
            .map(|c| if c == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "| {} |", align.join(" | "));
        for row in &self.rows {
            let cells: Vec<String> = match row {
                Row::Cells(cells) => cells.clone(),
                Row::Span(first, message) => {
                    let mut cells = vec![first.clone(), message.clone()];
                    cells.resize(self.header.len(), String::new());
                    cells
                }
            };
            let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out
    }
}

/// `12,345`.
pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), thousands)
}

fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2} ms")
    } else {
        format!("{value:.0} ms")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// The cell of a run that did not complete: why.
fn why(run: &Run) -> String {
    format!(
        "did not run: {}",
        run.error.as_deref().unwrap_or("incomplete")
    )
}

/// The systems in the order they ran, as `(id, label)`.
fn systems(results: &Results) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for run in &results.runs {
        if !seen.iter().any(|(id, _)| *id == run.system) {
            seen.push((run.system.clone(), run.label.clone()));
        }
    }
    seen
}

const THROUGHPUT: [(&str, &str); 3] = [
    ("noop", "No-op tasks"),
    ("fib", "CPU: fib(25) per task"),
    ("markdown", "Real work: render a Markdown document per task"),
];

/// Every table, in reading order.
pub(crate) fn all(results: &Results) -> Vec<Table> {
    let mut tables = Vec::new();
    for (workload, title) in THROUGHPUT {
        tables.push(throughput(results, workload, title));
    }
    tables.push(ratios(results));
    tables.push(latency(results));
    tables.push(memory(results));
    if !results.scaling.is_empty() {
        tables.push(scaling(results));
    }
    tables
}

fn throughput(results: &Results, workload: &str, title: &str) -> Table {
    let mut table = Table::new(
        format!(
            "{title} ({} tasks, {} workers)",
            thousands(results.tasks as f64),
            results.workers
        ),
        &[
            "system",
            "tasks/s end to end",
            "enqueue/s",
            "results counted",
            "enqueued with",
        ],
    );
    for (id, label) in systems(results) {
        let Some(run) = results.run(&id, workload) else {
            continue;
        };
        if run.complete() {
            table.push(vec![
                label,
                rate(run.per_s),
                rate(run.enqueue_per_s),
                format!(
                    "{} / {}",
                    thousands(run.counted as f64),
                    thousands(run.tasks as f64)
                ),
                run.enqueue_method.clone(),
            ]);
        } else {
            table.push_failure(label, run);
        }
    }
    table
}

/// wasq's end-to-end rate over each peer's, per workload.
fn ratios(results: &Results) -> Table {
    let all = systems(results);
    let (wasq, peers): (Vec<_>, Vec<_>) = all.iter().partition(|(id, _)| id.starts_with("wasq"));
    let mut header = vec!["wasq ÷ peer, tasks/s"];
    header.extend(peers.iter().map(|(_, label)| label.as_str()));
    let mut table = Table::new("Ratios: wasq's end-to-end rate over each peer's", &header);
    for (workload, _) in THROUGHPUT {
        for (wasq_id, wasq_label) in &wasq {
            let mut row = vec![format!("{workload}: {wasq_label}")];
            for (peer_id, _) in &peers {
                let ours = results.run(wasq_id, workload).and_then(|r| r.per_s);
                let theirs = results.run(peer_id, workload).and_then(|r| r.per_s);
                row.push(match (ours, theirs) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{}×", ratio(a / b)),
                    _ => "–".into(),
                });
            }
            table.push(row);
        }
    }
    table
}

fn ratio(value: f64) -> String {
    if value >= 100.0 {
        thousands(value)
    } else {
        format!("{value:.1}")
    }
}

fn latency(results: &Results) -> Table {
    let mut table = Table::new(
        "Latency: one task at a time into an idle cluster",
        &[
            "system",
            "to start p50",
            "to start p99",
            "to result p50",
            "to result p99",
            "samples",
        ],
    );
    for (id, label) in systems(results) {
        let Some(run) = results.run(&id, "latency") else {
            continue;
        };
        match (&run.latency, run.complete()) {
            (Some(l), true) => table.push(vec![
                label,
                ms(l.start_p50_ms),
                ms(l.start_p99_ms),
                ms(l.result_p50_ms),
                ms(l.result_p99_ms),
                l.samples.to_string(),
            ]),
            _ => table.push_failure(label, run),
        }
    }
    table
}

fn memory(results: &Results) -> Table {
    let queued = results
        .runs
        .iter()
        .find_map(|r| r.memory.as_ref().map(|m| m.queued))
        .unwrap_or(0);
    let mut table = Table::new(
        "Memory: proportional set size of the whole cluster (every process)",
        &[
            "system",
            "idle",
            &format!("peak working through {} queued", thousands(queued as f64)),
        ],
    );
    for (id, label) in systems(results) {
        let Some(run) = results.run(&id, "memory") else {
            continue;
        };
        match (&run.memory, run.complete()) {
            (Some(m), true) => table.push(vec![label, mib(m.idle_kib), mib(m.loaded_kib)]),
            _ => table.push_failure(label, run),
        }
    }
    table
}

fn scaling(results: &Results) -> Table {
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut workers: Vec<usize> = Vec::new();
    for point in &results.scaling {
        if !labels.iter().any(|(id, _)| *id == point.system) {
            labels.push((point.system.clone(), point.label.clone()));
        }
        if !workers.contains(&point.workers) {
            workers.push(point.workers);
        }
    }
    let mut header = vec!["workers"];
    header.extend(labels.iter().map(|(_, label)| label.as_str()));
    let tasks = results.scaling.first().map_or(0, |p| p.tasks);
    let mut table = Table::new(
        format!(
            "Scaling: wasq no-op tasks/s by workers ({} tasks)",
            thousands(tasks as f64)
        ),
        &header,
    );
    for w in workers {
        let mut row = vec![w.to_string()];
        for (id, _) in &labels {
            let point = results
                .scaling
                .iter()
                .find(|p| p.system == *id && p.workers == w);
            row.push(match point {
                Some(p) if p.error.is_none() => rate(p.per_s),
                Some(_) => "failed".into(),
                None => "–".into(),
            });
        }
        table.push(row);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }

    #[test]
    fn text_tables_align_numbers_right() {
        let mut table = Table::new("t", &["system", "rate"]);
        table.push(vec!["a".into(), "1".into()]);
        table.push(vec!["longer".into(), "1,000".into()]);
        let text = table.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "  a           1");
        assert_eq!(lines[3], "  longer  1,000");
        assert!(table.markdown().contains("| --- | ---: |"));
    }
}
