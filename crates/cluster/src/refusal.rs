//! Packages this cluster will not run: a signature that does not verify
//! (most often a cluster started with another secret than the enqueuers'),
//! bytes that do not decode (another version's format), or a claim the
//! package's tenant does not own. None is deleted unseen: each refusal is
//! recorded in the store by the package's digest, and the package goes
//! back to the broker for other clusters, unless it is buried — moved with
//! its bytes into the store's dead letters (`wasq failed`) and out of the
//! broker — because every live cluster refused it (over at least 20 s),
//! because it was refused
//! for longer than [`BURY_AFTER`], or because its signature verified and
//! what it claims is refused everywhere alike.

use std::sync::Arc;
use std::time::Duration;

use wasq_brokers::Delivery;

use crate::Shared;
use wasq_store::{DeadLetter, Refusal, now_ms};

/// How long a package may be refused, by some clusters and not others,
/// before it is buried anyway.
pub(crate) const BURY_AFTER: Duration = Duration::from_secs(10 * 60);
/// A cluster whose heartbeat is older than this is not asked to agree.
const LIVE: Duration = Duration::from_secs(10);
/// How long a package must have been refused before "every live cluster
/// refused it" buries it: long enough for every running cluster's
/// heartbeat to be seen (one that started a moment ago included), so a
/// wrong cluster that starts first never buries what a right one would run.
const AGREE_AFTER: Duration = Duration::from_secs(20);

/// What a refused package is, as far as this cluster can tell.
pub(crate) struct Refused {
    pub(crate) reason: String,
    /// Whether its signature verified (it is refused for what it claims).
    pub(crate) verified: bool,
    /// The task id it claims, when readable.
    pub(crate) task_id: Option<String>,
}

/// Records a refusal, then buries the package or hands it back.
pub(crate) async fn refuse(
    shared: &Arc<Shared>,
    queue: &Arc<str>,
    delivery: Delivery,
    refused: Refused,
) {
    shared.refusals.refused(&refused.reason);
    let digest = wasq_core::Digest::of(&delivery.payload).to_string();
    let task_id = refused.task_id.or_else(|| {
        wasq_core::package::read_unverified(&delivery.payload)
            .ok()
            .map(|r| r.id)
    });
    let refusal = Refusal {
        digest: digest.clone(),
        queue: queue.to_string(),
        broker_id: delivery.ack_id.to_string(),
        task_id,
        verified: refused.verified,
        reason: refused.reason,
        cluster: shared.id.clone(),
        size: delivery.payload.len() as u64,
    };
    let taken = (queue.clone(), delivery.ack_id.clone());
    let record = match shared.store.record_refusal(&refusal).await {
        Ok(record) => record,
        Err(error) => {
            tracing::debug!(%error, "cannot record a refused package; handing it back");
            crate::jobs::hand_back(shared, &taken).await;
            return;
        }
    };
    if !buried(shared, &record).await {
        tracing::debug!(%digest, refusals = record.refusals, "handing a refused package back");
        crate::jobs::hand_back(shared, &taken).await;
        return;
    }
    if let Err(error) = shared.store.bury(&digest, &delivery.payload).await {
        tracing::debug!(%error, "cannot bury a refused package; handing it back");
        crate::jobs::hand_back(shared, &taken).await;
        return;
    }
    tracing::warn!(
        %digest,
        task_id = record.task_id.as_deref().unwrap_or("?"),
        "moved a package no cluster would run to the failed packages (see `wasq failed list`)"
    );
    if let Err(error) = shared.broker.fail(queue, &delivery.ack_id).await {
        // Kept in the store; the broker's copy comes back and is buried
        // again (the same digest, one record).
        tracing::warn!(%error, "cannot remove a failed package from the broker");
    }
    shared.held().remove(&taken);
    shared.room.notify_one();
}

/// Whether a refused package should leave the broker now.
async fn buried(shared: &Shared, record: &DeadLetter) -> bool {
    let refused_for = now_ms() - record.first_at_ms;
    if record.verified || refused_for >= BURY_AFTER.as_millis() as i64 {
        return true;
    }
    if refused_for < AGREE_AFTER.as_millis() as i64 {
        return false;
    }
    match shared.store.clusters(LIVE).await {
        Ok(clusters) => clusters
            .iter()
            .map(|c| &c.id)
            .chain(std::iter::once(&shared.id))
            .all(|id| record.refusers.contains(id)),
        Err(_) => false,
    }
}
