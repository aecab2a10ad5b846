//! The tenant gate: which queues the pusher takes from, in what turn and
//! how much. Each tenant's tasks come from its own queue; the pusher
//! serves the untenanted queue and every tenant in weighted round robin,
//! skipping a tenant that holds as many tasks as it may run (its
//! `max_running`, else the cluster's `tenant_max_running`) plus
//! [`PREFETCH_MARGIN`], or has no `fuel_per_minute` left in the current
//! window (its tasks wait in the broker until the next window). The
//! workers' dispatcher asks here too: how many of a tenant's tasks may run
//! and whether one may start.
//!
//! Fuel is charged while tasks run: a task reserves its whole budget (its
//! fuel limit) when it starts, only while the tenant has budget left, and
//! gets back what it did not burn when it ends, so a tenant overshoots its
//! window by at most one task's budget (per cluster: reservations are this
//! cluster's; what tasks burnt is written to the store every moment, so
//! clusters sharing a store share the budget). Module grants are looked
//! up here too, with a short cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use wasq_store::Store;

use wasq_client::config::Config;
use wasq_core::tenant::{Grants, Quotas, tenant_queue};
use wasq_store::now_ms;

/// How often tenants, usage and quotas are read from the store.
const REFRESH: Duration = Duration::from_millis(250);
/// How long a module's grants are trusted from the cache.
const GRANTS_TTL: Duration = Duration::from_secs(2);
/// Tasks a tenant of weight 1 gets per turn.
const QUANTUM: usize = 16;
/// Tasks of a tenant held beyond what it may run, so a worker that frees
/// up finds the next one at hand.
pub(crate) const PREFETCH_MARGIN: usize = 4;

/// A queue to take from in this turn, and at most how many.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) queue: Arc<str>,
    pub(crate) most: usize,
}

struct Entry {
    name: String,
    queue: Arc<str>,
    weight: u32,
    quotas: Quotas,
}

#[derive(Default)]
struct State {
    tenants: Vec<Entry>,
    /// The start of the current fuel window, ms since the epoch.
    window: i64,
    /// Fuel used per tenant in the current window (all clusters, as of the
    /// last refresh, plus this cluster's since).
    used: HashMap<String, u64>,
    /// This cluster's usage not yet written: window → tenant → (fuel, tasks).
    unflushed: HashMap<i64, HashMap<String, (u64, u64)>>,
    /// Fuel reserved by this cluster's running tasks, per tenant (counted
    /// in `used` of whatever window is current).
    reserved: HashMap<String, u64>,
    grants: HashMap<(String, String), (Grants, Instant)>,
    turn: usize,
}

/// How the dispatcher treats a tenant's tasks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Share {
    /// Most of its tasks running at once.
    pub(crate) running: usize,
    /// Its turns in the round robin.
    pub(crate) weight: u32,
}

pub(crate) struct TenantGate {
    window_ms: i64,
    /// Tasks a tenant without a `max_running` quota may run at once.
    default_running: usize,
    /// Whether the last refresh failed (warned once per outage).
    failing: std::sync::atomic::AtomicBool,
    base: Arc<str>,
    state: Mutex<State>,
}

impl TenantGate {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            window_ms: config.fuel_window.as_millis().max(1000) as i64,
            default_running: config.tenant_max_running(),
            base: Arc::from(config.queue.as_str()),
            failing: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn window_of(&self, ms: i64) -> i64 {
        ms - ms.rem_euclid(self.window_ms)
    }

    /// The untenanted queue.
    pub(crate) fn base(&self) -> &Arc<str> {
        &self.base
    }

    /// The queues to take from in this turn, the next turn starting one
    /// further; `None` when there are no tenants (the untenanted queue
    /// alone, taken the fast way). `held` counts held tasks per queue; it
    /// is only called when there are tenants.
    pub(crate) fn sources(
        &self,
        held: impl FnOnce() -> HashMap<Arc<str>, usize>,
        bulk: usize,
    ) -> Option<Vec<Source>> {
        if self.state().tenants.is_empty() {
            return None;
        }
        let held = held();
        let mut state = self.state();
        self.roll_window(&mut state);
        let count = state.tenants.len() + 1;
        let first = state.turn % count;
        state.turn = state.turn.wrapping_add(1);
        let mut sources = Vec::with_capacity(count);
        for i in 0..count {
            let slot = (first + i) % count;
            if slot == 0 {
                sources.push(Source {
                    queue: self.base.clone(),
                    most: bulk,
                });
                continue;
            }
            let entry = &state.tenants[slot - 1];
            let quotas = &entry.quotas;
            if let Some(budget) = quotas.fuel_per_minute
                && state.used.get(&entry.name).copied().unwrap_or(0) >= budget
            {
                continue;
            }
            let running = self.running_of(quotas);
            let holding = held.get(&entry.queue).copied().unwrap_or(0);
            let most = (QUANTUM * entry.weight as usize)
                .min(bulk)
                .min((running + PREFETCH_MARGIN).saturating_sub(holding));
            if most > 0 {
                sources.push(Source {
                    queue: entry.queue.clone(),
                    most,
                });
            }
        }
        Some(sources)
    }

    /// Starts a new window when the clock passed into one.
    fn roll_window(&self, state: &mut State) {
        let window = self.window_of(now_ms());
        if window != state.window {
            state.window = window;
            // Running tasks' budgets stay reserved in the new window.
            state.used = state.reserved.clone();
        }
    }

    /// Most of a tenant's tasks running at once, given its quotas.
    fn running_of(&self, quotas: &Quotas) -> usize {
        quotas.max_running.map_or(self.default_running, |most| {
            usize::try_from(most).unwrap_or(usize::MAX).max(1)
        })
    }

    /// How the dispatcher treats `tenant`'s tasks (a tenant not known yet:
    /// the defaults).
    pub(crate) fn share(&self, tenant: &str) -> Share {
        let state = self.state();
        match state.tenants.iter().find(|e| e.name == tenant) {
            Some(entry) => Share {
                running: self.running_of(&entry.quotas),
                weight: entry.weight,
            },
            None => Share {
                running: self.default_running,
                weight: 1,
            },
        }
    }

    /// Reserves `fuel` (a task's whole budget) for a task of `tenant`
    /// that starts; `false`, reserving nothing, when the tenant has no
    /// `fuel_per_minute` left in this window (the task waits).
    pub(crate) fn try_reserve(&self, tenant: &str, fuel: u64) -> bool {
        let mut state = self.state();
        self.roll_window(&mut state);
        let budget = state
            .tenants
            .iter()
            .find(|e| e.name == tenant)
            .and_then(|e| e.quotas.fuel_per_minute);
        if let Some(budget) = budget
            && state.used.get(tenant).copied().unwrap_or(0) >= budget
        {
            return false;
        }
        *state.used.entry(tenant.to_owned()).or_default() += fuel;
        *state.reserved.entry(tenant.to_owned()).or_default() += fuel;
        true
    }

    /// Counts a finished task of `tenant` that reserved `reserved` and
    /// burnt `fuel`: the part not burnt goes back to the tenant.
    pub(crate) fn finished(&self, tenant: &str, reserved: u64, fuel: u64) {
        let mut state = self.state();
        self.roll_window(&mut state);
        let window = state.window;
        if let Some(left) = state.reserved.get_mut(tenant) {
            *left = left.saturating_sub(reserved);
            if *left == 0 {
                state.reserved.remove(tenant);
            }
        }
        let used = state.used.entry(tenant.to_owned()).or_default();
        *used = used.saturating_sub(reserved).saturating_add(fuel);
        let pending = state
            .unflushed
            .entry(window)
            .or_default()
            .entry(tenant.to_owned())
            .or_default();
        pending.0 += fuel;
        pending.1 += 1;
    }

    /// A tenant's quotas, if it is known.
    pub(crate) fn quotas(&self, tenant: &str) -> Option<Quotas> {
        self.state()
            .tenants
            .iter()
            .find(|e| e.name == tenant)
            .map(|e| e.quotas.clone())
    }

    /// What module `module` of `tenant` may reach (nothing when the module
    /// or the tenant is gone, or the store cannot say).
    pub(crate) async fn grants(&self, store: &Store, tenant: &str, module: &str) -> Grants {
        let key = (tenant.to_owned(), module.to_owned());
        if let Some((grants, at)) = self.state().grants.get(&key)
            && at.elapsed() < GRANTS_TTL
        {
            return grants.clone();
        }
        let grants = match store.tenant_module(tenant, module).await {
            Ok(found) => found.map(|m| m.grants).unwrap_or_default(),
            Err(error) => {
                tracing::warn!(%error, "cannot read a module's grants; running it with none");
                return Grants::default();
            }
        };
        self.state()
            .grants
            .insert(key, (grants.clone(), Instant::now()));
        grants
    }

    /// [`refresh_once`](Self::refresh_once), warning once when the store
    /// stops answering and once when it answers again.
    async fn refresh(&self, store: &Store) {
        use std::sync::atomic::Ordering;
        match self.refresh_once(store).await {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::warn!("the store answers again; tenants' quotas are current");
                }
            }
            Err(error) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "cannot read tenants or record their fuel; retrying");
                }
            }
        }
    }

    /// Writes this cluster's usage and reads tenants and everyone's usage.
    async fn refresh_once(&self, store: &Store) -> Result<(), wasq_store::StoreError> {
        let unflushed = std::mem::take(&mut self.state().unflushed);
        for (window, usage) in unflushed {
            let rows: Vec<(String, u64, u64)> = usage
                .iter()
                .map(|(tenant, (fuel, tasks))| (tenant.clone(), *fuel, *tasks))
                .collect();
            if let Err(error) = store.add_usage(window, &rows).await {
                let mut state = self.state();
                let pending = state.unflushed.entry(window).or_default();
                for (tenant, (fuel, tasks)) in usage {
                    let slot = pending.entry(tenant).or_default();
                    slot.0 += fuel;
                    slot.1 += tasks;
                }
                drop(state);
                return Err(error);
            }
        }
        let tenants = store.tenants().await?;
        let window = self.window_of(now_ms());
        let usage = store.usage(window).await?;
        let mut state = self.state();
        state.tenants = tenants
            .into_iter()
            .map(|t| Entry {
                queue: Arc::from(tenant_queue(&self.base, &t.name)),
                name: t.name,
                weight: t.weight.max(1),
                quotas: t.quotas,
            })
            .collect();
        state.window = window;
        state.used = usage.into_iter().map(|(t, (fuel, _))| (t, fuel)).collect();
        // Usage recorded here but not yet written counts too.
        let pending: Vec<(String, u64)> = state
            .unflushed
            .get(&window)
            .map(|m| m.iter().map(|(t, (fuel, _))| (t.clone(), *fuel)).collect())
            .unwrap_or_default();
        for (tenant, fuel) in pending {
            *state.used.entry(tenant).or_default() += fuel;
        }
        // So do the budgets of tasks running here.
        let reserved: Vec<(String, u64)> = state
            .reserved
            .iter()
            .map(|(t, fuel)| (t.clone(), *fuel))
            .collect();
        for (tenant, fuel) in reserved {
            *state.used.entry(tenant).or_default() += fuel;
        }
        Ok(())
    }
}

/// Keeps the gate current until the cluster stops (and writes usage once
/// more on the way out).
pub(crate) async fn run(gate: &TenantGate, store: &Store, mut stop: watch::Receiver<bool>) {
    loop {
        gate.refresh(store).await;
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = crate::stopped(&mut stop) => break,
        }
    }
    // Tasks finishing during the stop are counted by the last refresh
    // after the workers are done; a moment's grace is enough here.
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.refresh(store).await;
}
