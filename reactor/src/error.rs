//! Why a wait on a [`PollDesc`](crate::PollDesc) ended without readiness.
//!
//! Mirrors: `runtime/netpoll.go` (Go 1.19) `pollErrClosing`, `pollErrTimeout`,
//! `pollErrNotPollable`, returned by `netpollcheckerr`, and `internal/poll/fd_poll_runtime.go`
//! `convertErr`, which turns them into `ErrNetClosing`, `ErrDeadlineExceeded`, `ErrNotPollable`.

#![forbid(unsafe_code)]

use std::fmt;
use std::io;

/// The error states a poll descriptor can be in (Go's `pollErr*` codes, without `pollNoError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PollError {
    /// The descriptor is being closed (Go: `pollErrClosing`). Every later wait fails with it.
    Closing,
    /// The deadline of this direction has passed (Go: `pollErrTimeout`). Every later wait in that
    /// direction fails with it until the runtime clears the expiry.
    Timeout,
    /// The last event was a bare `EPOLLERR` (Go: `pollErrNotPollable`); reported to readers only,
    /// since "an error on a write event will be captured in a subsequent write call".
    NotPollable,
}

impl fmt::Display for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            // Go's ErrNetClosing text, which users grep for.
            PollError::Closing => "use of closed network connection",
            // Go's ErrDeadlineExceeded text.
            PollError::Timeout => "i/o timeout",
            PollError::NotPollable => "not pollable",
        })
    }
}

impl std::error::Error for PollError {}

impl From<PollError> for io::Error {
    /// Keeps the `PollError` inside (find it with `get_ref().downcast_ref::<PollError>()`);
    /// a timeout has `ErrorKind::TimedOut`, as Go's `Timeout() == true`.
    fn from(e: PollError) -> io::Error {
        let kind = match e {
            PollError::Timeout => io::ErrorKind::TimedOut,
            PollError::Closing | PollError::NotPollable => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
