//! Running one task: a fresh store with its own WASI context, limits and
//! output capture; instantiate, call `_start` (a WASI preview 1 command
//! module) or `run` (a `wasq:task` component), and turn what happened into
//! an [`Outcome`].

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::CancelToken;
use crate::cache::Compiled;
use crate::call::TaskCall;
use crate::cpu::CpuMetered;
use crate::error::one_line;
use crate::limiter::TaskLimiter;
use crate::pipe::CappedPipe;
use crate::state::{ComponentState, Limited, TaskState};
use crate::watch::Watcher;
use crate::{Execution, Limits, Outcome, OutputStream, Sandbox, TaskModule, Usage};

/// Fuel between yields to the async runtime when fuel is on (about a
/// millisecond of a tight loop).
///
/// Cranelift keeps the fuel counter in a register and writes it back to the
/// store only on calls to the runtime; the epoch check is not one of those,
/// so a loop stopped by its deadline would report the fuel of its last call
/// instead of what it burnt. The out-of-fuel yield does write it back, which
/// keeps `fuel_consumed` exact to within this interval. Hard-coded: the
/// cost of a yield is a fiber switch, negligible at this interval.
const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// The call into a task, borrowing its store.
type CallFuture<'a> = Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send + 'a>>;

impl Sandbox {
    /// Runs `call` on a fresh instance of `module` under `limits` (memory and
    /// tables clamped to the engine's caps).
    ///
    /// Waits for a free pool slot first. Never fails: every way a task can
    /// end is an [`Outcome`]. Must be called inside a tokio runtime with
    /// timers enabled.
    pub async fn run(&self, module: &TaskModule, call: &TaskCall, limits: &Limits) -> Execution {
        self.run_cancellable(module, call, limits, &CancelToken::new())
            .await
    }

    /// [`run`](Self::run), stopped with [`Outcome::Cancelled`] when
    /// `cancel` is cancelled (before it starts, or within an epoch tick
    /// while it runs).
    pub async fn run_cancellable(
        &self,
        module: &TaskModule,
        call: &TaskCall,
        limits: &Limits,
        cancel: &CancelToken,
    ) -> Execution {
        let inner = &self.inner;
        if cancel.is_cancelled() {
            let mut execution = Execution::invalid_module("");
            execution.outcome = Outcome::Cancelled;
            return execution;
        }
        let limits = limits.clamped(&inner.config);
        // The semaphore is never closed, so this only waits. A component
        // holds several core instances and memories: it takes more room.
        let permits = match module.compiled() {
            Compiled::Module(_) => 1,
            Compiled::Component(_) => crate::engine::COMPONENT_SLOTS,
        };
        let _slot = inner.slots.acquire_many(permits).await.ok();

        let mut wasi = WasiCtxBuilder::new();
        wasi.arg(&call.module).arg(&call.task);
        for (name, value) in &call.env {
            wasi.env(name, value);
        }
        if let Some(dir) = &call.scratch
            && let Err(error) =
                wasi.preopened_dir(dir, "/scratch", wasmtime_wasi::FsPerms::ReadWrite)
        {
            return Execution::invalid_module(format!(
                "cannot open the scratch directory {}: {error}",
                dir.display()
            ));
        }
        // Stopped when the scratch directory goes over a quota.
        let over_quota = CancelToken::new();
        let watcher = match &call.scratch {
            Some(dir) => match Watcher::start(dir, limits.scratch, over_quota.clone()) {
                Ok(watcher) => Some(watcher),
                Err(error) => {
                    return Execution::invalid_module(format!(
                        "cannot watch the scratch directory {}: {error}",
                        dir.display()
                    ));
                }
            },
            None => None,
        };
        let stdout = CappedPipe::new(limits.stdout);
        let stderr = CappedPipe::new(limits.stderr);
        let limiter = TaskLimiter::new(limits.memory, limits.table_elements);
        let ran = match module.compiled() {
            Compiled::Module(pre) => {
                let wasi = wasi
                    .stdin(MemoryInputPipe::new(call.input.clone()))
                    .stdout(stdout.clone())
                    .stderr(stderr.clone())
                    .build_p1();
                let store = Store::new(&inner.engine, TaskState { wasi, limiter });
                let pre = pre.clone();
                self.drive(store, &limits, [cancel, &over_quota], move |store| {
                    Box::pin(async move {
                        let instance = pre.instantiate_async(&mut *store).await?;
                        let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
                        start.call_async(&mut *store, ()).await
                    })
                })
                .await
            }
            Compiled::Component(pre) => {
                // What the component prints, on stdout or stderr, is its log;
                // its result is what `run` returns.
                let wasi = wasi.stdout(stderr.clone()).stderr(stderr.clone()).build();
                let state = ComponentState {
                    wasi,
                    table: ResourceTable::new(),
                    limiter,
                };
                let store = Store::new(&inner.engine, state);
                let input = String::from_utf8_lossy(&call.input).into_owned();
                let task = call.task.clone();
                let (pre, result, log) = (pre.clone(), stdout.clone(), stderr.clone());
                self.drive(store, &limits, [cancel, &over_quota], move |store| {
                    Box::pin(async move {
                        let instance = pre.instantiate_async(&mut *store).await?;
                        let run = instance
                            .get_typed_func::<(&str, &str), (Result<String, String>,)>(
                                &mut *store,
                                "run",
                            )?;
                        let (returned,) = run
                            .call_async(&mut *store, (task.as_str(), input.as_str()))
                            .await?;
                        match returned {
                            Ok(json) => {
                                if result.append(json.as_bytes()) < json.len() {
                                    return Err(wasmtime::format_err!(
                                        "the result is over its limit"
                                    ));
                                }
                                Ok(())
                            }
                            Err(message) => {
                                log.append(message.as_bytes());
                                Err(I32Exit(1).into())
                            }
                        }
                    })
                })
                .await
            }
        };

        let (stdout, stdout_over) = stdout.take();
        let (stderr, stderr_over) = stderr.take();
        let ended = match ran.ended {
            Ended::Returned(Err(_)) if cancel.is_cancelled() => Ended::Cancelled,
            ended => ended,
        };
        let over = match watcher {
            Some(watcher) => watcher.finish().await,
            None => None,
        };
        // A scratch quota is hard: over it, the task failed, whatever it
        // returned.
        let outcome = match over {
            Some(what) => Outcome::ScratchLimit { what },
            None => classify(
                ended,
                Overruns {
                    memory: ran.memory_denied,
                    stdout: stdout_over,
                    stderr: stderr_over,
                },
            ),
        };
        Execution {
            outcome,
            stdout,
            stderr,
            usage: Usage {
                cpu: ran.cpu,
                wall: ran.wall,
                memory_peak: ran.memory_peak as u64,
                fuel_consumed: ran.fuel_consumed,
            },
        }
    }

    /// Runs `call` in `store` under `limits`: fuel, the wall-clock deadline
    /// (epoch ticks, with a timer as backstop), cancellation by either of
    /// `stops` (from outside, and by the scratch watcher) and CPU metering;
    /// returns how it ended and what it used.
    async fn drive<T: Limited>(
        &self,
        mut store: Store<T>,
        limits: &Limits,
        stops: [&CancelToken; 2],
        call: impl for<'a> FnOnce(&'a mut Store<T>) -> CallFuture<'a>,
    ) -> Ran {
        let inner = &self.inner;
        store.limiter(|state| state.limiter());
        let fuel = inner.config.fuel;
        if fuel {
            // Fuel is on in the engine, so neither call can fail.
            let _ = store.set_fuel(limits.fuel);
            let _ = store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL));
        }

        let started = Instant::now();
        let deadline = started + limits.timeout;
        // On every epoch tick: yield to the runtime so tasks share threads, or
        // stop the task once its wall-clock deadline has passed.
        store.set_epoch_deadline(1);
        let [cancel, over_quota] = stops;
        let flags = [cancel.clone(), over_quota.clone()];
        store.epoch_deadline_callback(move |_| {
            Ok(
                if Instant::now() >= deadline || flags.iter().any(CancelToken::is_cancelled) {
                    UpdateDeadline::Interrupt
                } else {
                    UpdateDeadline::Yield(1)
                },
            )
        });

        // The epoch deadline stops wasm code; it traps cleanly, so fuel and
        // memory figures stay exact. The timer is the backstop for time
        // spent in host calls (a WASI sleep), where no epoch check runs; it
        // fires a few ticks later so it never races the epoch trap.
        let backstop = deadline + inner.config.epoch_tick * 4 + Duration::from_millis(10);
        let (ended, cpu) = {
            let running = call(&mut store);
            let timed = async {
                tokio::select! {
                    ended = tokio::time::timeout_at(backstop.into(), running) => match ended {
                        Ok(ended) => Ended::Returned(ended),
                        Err(_) => Ended::DeadlinePassed,
                    },
                    _ = cancel.cancelled() => Ended::Cancelled,
                    _ = over_quota.cancelled() => Ended::Cancelled,
                }
            };
            CpuMetered::new(timed, inner.config.cpu_metering).await
        };
        let wall = started.elapsed();
        let fuel_consumed = fuel.then(|| limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0)));
        let limiter = store.data_mut().limiter();
        Ran {
            ended,
            cpu,
            wall,
            memory_denied: limiter.denied,
            memory_peak: limiter.memory_peak,
            fuel_consumed,
        }
    }
}

/// What a call did, before its outcome is decided.
struct Ran {
    ended: Ended,
    cpu: Duration,
    wall: Duration,
    memory_denied: bool,
    memory_peak: usize,
    fuel_consumed: Option<u64>,
}

/// How the call returned.
enum Ended {
    Returned(wasmtime::Result<()>),
    DeadlinePassed,
    Cancelled,
}

/// Limits the task ran into, whether or not that is why it ended.
#[derive(Clone, Copy)]
struct Overruns {
    memory: bool,
    stdout: bool,
    stderr: bool,
}

/// Turns the end of a call into an outcome. A limit that was hit explains a
/// failure (a guest that handles a refused `memory.grow` and exits 0 still
/// succeeds); a trap we caused (fuel, deadline) names itself.
fn classify(ended: Ended, overruns: Overruns) -> Outcome {
    let error = match ended {
        Ended::DeadlinePassed => return Outcome::Timeout,
        Ended::Cancelled => return Outcome::Cancelled,
        Ended::Returned(Ok(())) => return Outcome::Success,
        Ended::Returned(Err(error)) => error,
    };
    let exit = error.downcast_ref::<I32Exit>().map(|exit| exit.0);
    if exit == Some(0) {
        return Outcome::Success;
    }
    if overruns.stdout {
        return Outcome::OutputLimit {
            stream: OutputStream::Stdout,
        };
    }
    if overruns.stderr {
        return Outcome::OutputLimit {
            stream: OutputStream::Stderr,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => return Outcome::FuelExhausted,
        Some(Trap::Interrupt) => return Outcome::Timeout,
        _ => {}
    }
    if overruns.memory {
        return Outcome::MemoryLimit;
    }
    match exit {
        Some(code) => Outcome::GuestError { code },
        None => Outcome::Trap {
            message: describe_trap(&error),
        },
    }
}

/// One line: the trap and the innermost named wasm frames.
fn describe_trap(error: &wasmtime::Error) -> String {
    let what = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => one_line(error),
    };
    let frames: Vec<String> = error
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .filter_map(|frame| frame.func_name().map(str::to_owned))
                .take(3)
                .collect()
        })
        .unwrap_or_default();
    if frames.is_empty() {
        what
    } else {
        format!("{what} in {}", frames.join(" <- "))
    }
}
