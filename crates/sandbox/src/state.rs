//! The data of one task's wasmtime store: its WASI context and its resource
//! limiter, for a command module ([`TaskState`]) and for a component
//! ([`ComponentState`]).

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limiter::TaskLimiter;

/// The data of one task's store: a command module's.
pub(crate) struct TaskState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: TaskLimiter,
}

/// The data of one task's store: a component's (WASI preview 2).
pub(crate) struct ComponentState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: TaskLimiter,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Store data with a resource limiter.
pub(crate) trait Limited: Send + 'static {
    fn limiter(&mut self) -> &mut TaskLimiter;
}

impl Limited for TaskState {
    fn limiter(&mut self) -> &mut TaskLimiter {
        &mut self.limiter
    }
}

impl Limited for ComponentState {
    fn limiter(&mut self) -> &mut TaskLimiter {
        &mut self.limiter
    }
}
