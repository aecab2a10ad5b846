//! Capped in-memory capture of a task's stdout and stderr.
//!
//! Like wasmtime-wasi's `MemoryOutputPipe`, but it remembers that the guest
//! tried to write past its limit, so the execution can end with
//! `output_limit` instead of a generic trap.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

#[derive(Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    overflowed: bool,
}

/// One output stream of one task: everything written, up to `limit` bytes.
/// Clones share the buffer.
#[derive(Debug, Clone)]
pub(crate) struct CappedPipe {
    limit: usize,
    buffer: Arc<Mutex<Buffer>>,
}

impl CappedPipe {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            buffer: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // The buffer holds plain bytes: a panic elsewhere cannot leave it
        // inconsistent, so a poisoned lock is still good to use.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes what was written and whether the guest tried to write more.
    pub(crate) fn take(&self) -> (Vec<u8>, bool) {
        let mut buf = self.lock();
        (std::mem::take(&mut buf.bytes), buf.overflowed)
    }

    /// Appends what fits; returns how much did, flagging an overflow.
    pub(crate) fn append(&self, data: &[u8]) -> usize {
        let mut buf = self.lock();
        let room = self.limit.saturating_sub(buf.bytes.len());
        let n = data.len().min(room);
        buf.bytes.extend_from_slice(&data[..n]);
        if n < data.len() {
            buf.overflowed = true;
        }
        n
    }

    fn overflow_error(&self) -> StreamError {
        StreamError::Trap(wasmtime::format_err!(
            "output is over its limit of {} bytes",
            self.limit
        ))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        if self.append(&bytes) < bytes.len() {
            return Err(self.overflow_error());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        let used = self.lock().bytes.len();
        // When full, still permit one byte: wasmtime-wasi asks for a permit
        // after every flush, and a guest that wrote exactly its limit has
        // done nothing wrong. Its next real write overflows in `write`,
        // which traps, so the task ends deterministically with
        // `output_limit` instead of ignoring a closed stream.
        Ok(self.limit.saturating_sub(used).max(1))
    }
}

impl AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = self.append(data);
        if n == 0 && !data.is_empty() {
            return Poll::Ready(Err(std::io::Error::other("output is over its limit")));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_fits_and_flags_the_rest() {
        let mut pipe = CappedPipe::new(5);
        assert_eq!(pipe.check_write().unwrap(), 5);
        pipe.write(Bytes::from_static(b"abc")).unwrap();
        assert!(pipe.write(Bytes::from_static(b"defg")).is_err());
        let (bytes, overflowed) = pipe.take();
        assert_eq!(bytes, b"abcde");
        assert!(overflowed);
    }

    #[test]
    fn exactly_full_is_not_an_overflow() {
        let mut pipe = CappedPipe::new(3);
        pipe.write(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(pipe.check_write().unwrap(), 1);
        assert_eq!(pipe.take(), (b"abc".to_vec(), false));
    }

    #[test]
    fn writing_past_full_overflows() {
        let mut pipe = CappedPipe::new(3);
        pipe.write(Bytes::from_static(b"abc")).unwrap();
        assert!(pipe.write(Bytes::from_static(b"d")).is_err());
        assert_eq!(pipe.take(), (b"abc".to_vec(), true));
    }
}
