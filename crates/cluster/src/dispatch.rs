//! The dispatcher's waiting room: jobs taken from the broker wait here for
//! a free worker, in one lane per tenant (untenanted jobs share a lane of
//! their own), so fairness is decided when a worker frees up rather than
//! by the order tasks arrived in. The next job comes from the lanes in
//! weighted round robin (a tenant of weight `w` starts up to `w` jobs per
//! turn), skipping a lane whose tenant already runs as many jobs as its
//! share allows or whose front job may not start yet (no fuel budget
//! left).

use std::collections::{HashMap, VecDeque};

use crate::tenants::Share;

/// The key of the untenanted lane (tenant names are never empty).
pub(crate) const UNTENANTED: &str = "";

/// Jobs waiting for a worker, by tenant.
pub(crate) struct Lanes<J> {
    lanes: HashMap<String, Lane<J>>,
    /// Keys of the lanes with jobs waiting, the one whose turn it is first.
    order: VecDeque<String>,
    /// Jobs the lane at the front may still start in this turn.
    credit: u32,
    waiting: usize,
}

struct Lane<J> {
    jobs: VecDeque<J>,
    running: usize,
    share: Share,
}

impl<J> Default for Lanes<J> {
    fn default() -> Self {
        Self {
            lanes: HashMap::new(),
            order: VecDeque::new(),
            credit: 0,
            waiting: 0,
        }
    }
}

impl<J> Lanes<J> {
    /// Whether no job waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// Adds a job to `key`'s lane; `share` is the tenant's current share
    /// (the untenanted lane has no limit).
    pub(crate) fn push(&mut self, key: &str, share: Share, job: J) {
        let lane = self.lanes.entry(key.to_owned()).or_insert_with(|| Lane {
            jobs: VecDeque::new(),
            running: 0,
            share,
        });
        lane.share = share;
        if lane.jobs.is_empty() {
            self.order.push_back(key.to_owned());
        }
        lane.jobs.push_back(job);
        self.waiting += 1;
        if self.order.len() == 1 {
            self.refill();
        }
    }

    /// The next job to start and its lane's key, counted as running until
    /// [`ended`](Self::ended); `None` when every lane with jobs is at its
    /// share or `may_start` refuses its front job (`may_start` is asked
    /// once per lane at most, and a job it accepts starts).
    pub(crate) fn next(
        &mut self,
        mut may_start: impl FnMut(&str, &J) -> bool,
    ) -> Option<(String, J)> {
        for _ in 0..self.order.len() {
            let key = self.order.front()?.clone();
            let credit = self.credit;
            let lane = self.lanes.get_mut(&key)?;
            let ready = credit > 0
                && lane.running < lane.share.running
                && lane.jobs.front().is_some_and(|job| may_start(&key, job));
            if !ready {
                self.order.rotate_left(1);
                self.refill();
                continue;
            }
            let job = lane.jobs.pop_front()?;
            lane.running += 1;
            let emptied = lane.jobs.is_empty();
            self.waiting -= 1;
            self.credit -= 1;
            if emptied {
                self.credit = 0;
                self.order.pop_front();
            } else if self.credit == 0 {
                self.order.rotate_left(1);
            }
            if self.credit == 0 {
                self.refill();
            }
            return Some((key, job));
        }
        None
    }

    /// A job of `key`'s lane stopped running.
    pub(crate) fn ended(&mut self, key: &str) {
        if let Some(lane) = self.lanes.get_mut(key) {
            lane.running = lane.running.saturating_sub(1);
            if lane.running == 0 && lane.jobs.is_empty() {
                self.lanes.remove(key);
            }
        }
    }

    /// Takes every waiting job out (on stop).
    pub(crate) fn drain(&mut self) -> Vec<J> {
        self.order.clear();
        self.waiting = 0;
        self.lanes
            .values_mut()
            .flat_map(|lane| lane.jobs.drain(..))
            .collect()
    }

    /// Gives the lane now at the front its turn's worth of starts.
    fn refill(&mut self) {
        self.credit = self
            .order
            .front()
            .and_then(|key| self.lanes.get(key))
            .map_or(0, |lane| lane.share.weight.max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(running: usize, weight: u32) -> Share {
        Share { running, weight }
    }

    /// Starts every job that may start; their lanes' keys in order.
    fn start_all(lanes: &mut Lanes<u32>) -> Vec<String> {
        std::iter::from_fn(|| lanes.next(|_, _| true).map(|(key, _)| key)).collect()
    }

    #[test]
    fn a_backlog_does_not_delay_another_tenants_job() {
        let mut lanes = Lanes::default();
        for i in 0..100 {
            lanes.push("big", share(usize::MAX, 1), i);
        }
        lanes.push("small", share(usize::MAX, 1), 0);
        let first: Vec<_> = (0..2)
            .filter_map(|_| lanes.next(|_, _| true).map(|(k, _)| k))
            .collect();
        assert_eq!(first, ["big", "small"]);
    }

    #[test]
    fn weights_give_turns_in_proportion() {
        let mut lanes = Lanes::default();
        for i in 0..6 {
            lanes.push("heavy", share(usize::MAX, 2), i);
            lanes.push("light", share(usize::MAX, 1), i);
        }
        let order = start_all(&mut lanes);
        assert_eq!(
            order[..6],
            ["heavy", "heavy", "light", "heavy", "heavy", "light"]
        );
        assert_eq!(order.len(), 12);
        assert!(lanes.is_empty());
    }

    #[test]
    fn a_tenant_at_its_share_waits_until_one_of_its_jobs_ends() {
        let mut lanes = Lanes::default();
        for i in 0..5 {
            lanes.push("a", share(2, 1), i);
        }
        assert_eq!(start_all(&mut lanes), ["a", "a"]);
        lanes.push("b", share(2, 1), 0);
        assert_eq!(start_all(&mut lanes), ["b"]);
        lanes.ended("a");
        assert_eq!(start_all(&mut lanes), ["a"]);
    }

    #[test]
    fn a_refused_job_waits_and_the_others_go_on() {
        let mut lanes = Lanes::default();
        lanes.push("broke", share(9, 1), 1);
        lanes.push("rich", share(9, 1), 2);
        let started = lanes.next(|key, _| key != "broke");
        assert_eq!(started, Some(("rich".into(), 2)));
        assert!(lanes.next(|key, _| key != "broke").is_none());
        assert!(!lanes.is_empty());
        assert_eq!(lanes.drain(), [1]);
        assert!(lanes.is_empty());
    }
}
