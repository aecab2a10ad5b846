//! Memory of a process tree, read from `/proc`: the sum of each process's proportional set
//! size (`Pss` in `smaps_rollup`, so pages shared by forked workers count once in total), or
//! its resident set where `smaps_rollup` is missing.

use std::collections::HashMap;
use std::fs;

/// Kibibytes used by `root` and all its descendants; 0 when `root` is gone.
pub(crate) fn tree_kib(root: u32) -> u64 {
    descendants(root)
        .into_iter()
        .chain(std::iter::once(root))
        .map(process_kib)
        .sum()
}

/// The pids below `root`, found through each process's parent in `/proc/PID/stat`.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, parent) in all_processes() {
        children.entry(parent).or_default().push(pid);
    }
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            found.push(child);
            stack.push(child);
        }
    }
    found
}

/// `(pid, parent pid)` of every process.
fn all_processes() -> Vec<(u32, u32)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, parent_of(&stat)?))
        })
        .collect()
}

/// The parent pid in a `/proc/PID/stat` line: the second field after the command, which is in
/// parentheses and may itself hold spaces and parentheses.
fn parent_of(stat: &str) -> Option<u32> {
    let after_command = &stat[stat.rfind(')')? + 1..];
    after_command.split_whitespace().nth(1)?.parse().ok()
}

fn process_kib(pid: u32) -> u64 {
    let field = |file: &str, name: &str| -> Option<u64> {
        let text = fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    field("smaps_rollup", "Pss:")
        .or_else(|| field("status", "VmRSS:"))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_read_past_a_command_with_parentheses() {
        let stat = "4242 (odd ) name) S 17 4242 4242 0 -1 4194560";
        assert_eq!(parent_of(stat), Some(17));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn this_process_and_a_child_are_measured() {
        let me = std::process::id();
        let alone = tree_kib(me);
        assert!(alone > 0, "this test process uses memory");
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        // Give the child a moment to exist in /proc with its parent set.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(descendants(me).contains(&child.id()));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(tree_kib(u32::MAX), 0, "no such process");
    }
}
