//! Counting runs in the store (see `wasq-store`'s `runs.rs`), so a task is given
//! up after `max_attempts` runs that started, never for deliveries that
//! did not run.
//!
//! A redelivered task's run is counted before it starts, and the worker
//! waits for the count: it decides whether the task runs again. A first
//! delivery's run is only counted if it lasts longer than [`SOON`]: one
//! that ends sooner, the most of a busy queue's, costs the store nothing;
//! one that takes its cluster down within [`SOON`] goes uncounted, so a
//! task that kills every cluster at once runs `max_attempts + 1` times
//! before it is given up. One writer counts every run due meanwhile in one
//! transaction (a group commit).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use wasq_store::Store;

/// Most runs counted in one transaction.
const BATCH: usize = 512;
/// A first delivery's run is counted once it has lasted this long.
pub(crate) const SOON: Duration = Duration::from_millis(200);
/// How often the writer looks for runs that have lasted [`SOON`].
const TICK: Duration = Duration::from_millis(50);

/// The count of a run, or why the store could not give it.
type Answer = Result<u32, String>;

/// A run to count: the task, its attempt, and where the count goes.
struct Request {
    id: String,
    attempt: u32,
    answer: oneshot::Sender<Answer>,
}

/// First deliveries' runs not counted yet, by ticket.
#[derive(Default)]
struct Soon {
    runs: HashMap<u64, (Instant, Request)>,
}

/// The handle workers count their runs through. The writer ends when the
/// handle is dropped.
pub(crate) struct RunCounter {
    now: mpsc::UnboundedSender<Request>,
    soon: Arc<Mutex<Soon>>,
    next_ticket: AtomicU64,
}

/// A first delivery's run, counted only if it lasts: see [`RunCounter`].
pub(crate) struct Ticket {
    number: u64,
    counted: oneshot::Receiver<Answer>,
}

impl RunCounter {
    /// Starts the writer on the current runtime.
    pub(crate) fn start(store: Store) -> Self {
        let (now, requests) = mpsc::unbounded_channel();
        let soon = Arc::new(Mutex::new(Soon::default()));
        tokio::spawn(write(store, requests, soon.clone()));
        Self {
            now,
            soon,
            next_ticket: AtomicU64::new(0),
        }
    }

    fn soon(&self) -> MutexGuard<'_, Soon> {
        self.soon.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a run of `(id, attempt)` that is about to start; answers how
    /// many runs of it have started, this one included, or why the store
    /// could not count it (then it must not run).
    pub(crate) async fn count(&self, id: &str, attempt: u32) -> Answer {
        let (answer, counted) = oneshot::channel();
        let request = Request {
            id: id.to_owned(),
            attempt,
            answer,
        };
        if self.now.send(request).is_err() {
            return Err("the run counter has stopped".into());
        }
        counted
            .await
            .unwrap_or_else(|_| Err("the run counter has stopped".into()))
    }

    /// A first delivery's run that starts now: counted if it lasts
    /// [`SOON`]; [`finish`](Self::finish) it when it ends.
    pub(crate) fn count_soon(&self, id: &str, attempt: u32) -> Ticket {
        let number = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let (answer, counted) = oneshot::channel();
        let request = Request {
            id: id.to_owned(),
            attempt,
            answer,
        };
        self.soon()
            .runs
            .insert(number, (Instant::now() + SOON, request));
        Ticket { number, counted }
    }

    /// The runs of a first delivery's task that ended: 1 if it ended
    /// before it was counted, else the count (after it is in the store, so
    /// saving the result next forgets it).
    pub(crate) async fn finish(&self, ticket: Ticket) -> u32 {
        if self.soon().runs.remove(&ticket.number).is_some() {
            return 1;
        }
        match ticket.counted.await {
            Ok(Ok(runs)) => runs,
            _ => 1,
        }
    }
}

/// The writer: takes every run to count now, and every first delivery's
/// run that has lasted, counts them in one transaction, answers each.
async fn write(
    store: Store,
    mut requests: mpsc::UnboundedReceiver<Request>,
    soon: Arc<Mutex<Soon>>,
) {
    let mut later: Vec<Request> = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut batch = std::mem::take(&mut later);
        tokio::select! {
            request = requests.recv() => match request {
                Some(first) => batch.push(first),
                None => return,
            },
            _ = tick.tick() => {}
        }
        while batch.len() < BATCH {
            match requests.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        {
            let now = Instant::now();
            let mut soon = soon.lock().unwrap_or_else(PoisonError::into_inner);
            let due: Vec<u64> = soon
                .runs
                .iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(number, _)| *number)
                .collect();
            for number in due {
                if let Some((_, request)) = soon.runs.remove(&number) {
                    batch.push(request);
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        // The same run twice in one statement is an error in PostgreSQL:
        // a repeat waits for the next batch.
        let mut seen = HashSet::new();
        let (now, repeats): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|r| seen.insert((r.id.clone(), r.attempt)));
        later = repeats;
        let keys: Vec<(&str, u32)> = now.iter().map(|r| (r.id.as_str(), r.attempt)).collect();
        match store.mark_runs(&keys).await {
            Ok(counts) => {
                for (request, count) in now.into_iter().zip(counts) {
                    let _ = request.answer.send(Ok(count));
                }
            }
            Err(error) => {
                let reason = error.to_string();
                for request in now {
                    let _ = request.answer.send(Err(reason.clone()));
                }
            }
        }
    }
}
