//! Counting runs before they start (see `store/runs.rs`): workers ask for
//! their task's run to be counted and wait for the answer; one writer
//! counts every run asked for meanwhile in one transaction (a group
//! commit), so a busy cluster pays one store write per batch, not per task.

use std::collections::HashSet;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError};

/// Most runs counted in one transaction.
const BATCH: usize = 512;

/// A run to count: the task, its attempt, and where the count goes.
struct Request {
    id: String,
    attempt: u32,
    answer: oneshot::Sender<Result<u32, String>>,
}

/// The handle workers count their runs through. The writer ends when the
/// handle is dropped.
pub(crate) struct RunCounter {
    requests: mpsc::UnboundedSender<Request>,
}

impl RunCounter {
    /// Starts the writer on the current runtime.
    pub(crate) fn start(store: Store) -> Self {
        let (requests, pending) = mpsc::unbounded_channel();
        tokio::spawn(write(store, pending));
        Self { requests }
    }

    /// Counts a run of `(id, attempt)` that is about to start; answers how
    /// many runs of it have started, this one included, or why the store
    /// could not count it (then it must not run).
    pub(crate) async fn count(&self, id: &str, attempt: u32) -> Result<u32, String> {
        let (answer, counted) = oneshot::channel();
        let request = Request {
            id: id.to_owned(),
            attempt,
            answer,
        };
        if self.requests.send(request).is_err() {
            return Err("the run counter has stopped".into());
        }
        counted
            .await
            .unwrap_or_else(|_| Err("the run counter has stopped".into()))
    }
}

/// The writer: takes every request waiting, counts them in one
/// transaction, answers each.
async fn write(store: Store, mut pending: mpsc::UnboundedReceiver<Request>) {
    let mut later: Vec<Request> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut later);
        if batch.is_empty() {
            match pending.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
        }
        while batch.len() < BATCH {
            match pending.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        // The same run twice in one statement is an error in PostgreSQL:
        // a repeat waits for the next batch.
        let mut seen = HashSet::new();
        let (now, repeats): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|r| seen.insert((r.id.clone(), r.attempt)));
        later = repeats;
        let keys: Vec<(&str, u32)> = now.iter().map(|r| (r.id.as_str(), r.attempt)).collect();
        let counted: Result<Vec<u32>, StoreError> = store.mark_runs(&keys).await;
        match counted {
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
