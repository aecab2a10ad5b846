//! The stop signal the parts of a cluster wait on.

use tokio::sync::watch;

/// Resolves once the cluster is told to stop (without holding the watch's
/// lock across an await).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}
