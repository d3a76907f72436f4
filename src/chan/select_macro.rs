//! The `select!` macro: Go's `select` statement, turned into calls of `chan/select.rs`.
//!
//! Mirrors: `cmd/compile/internal/walk/select.go` (Go 1.19) `walkSelectCases`, which turns a
//! `select` statement into a `selectgo` call over an array of cases and a switch on the index
//! it returns.
//!
//! | phase       | what the macro emits                                                       |
//! |-------------|-----------------------------------------------------------------------------|
//! | `@parse`    | nothing yet: cases gather in `[..]`, the `default` in `(..)`; bad input is a `compile_error!` |
//! | `@bind`     | per case, in order: its channel (and value) evaluated once, borrowed with `ref` so temporaries live on, and a `RecvCase`/`SendCase` |
//! | (end of `@bind`) | one `chan::select` call over every case, then each case turned into its result (`Option`) |
//! | `@dispatch` | an `if let` chain: the body of the case that completed, else the default's  |
//!
//! Each case's variable is named `case` in the macro; every expansion step has its own hygiene,
//! so the names never clash.

#![forbid(unsafe_code)]

/// Go's `select` statement over channel operations.
///
/// ```
/// use std::time::Duration;
/// use gort::{chan, select};
///
/// gort::run(|| {
///     let (tx, rx) = chan::bounded::<u32>(1);
///     let (quit_tx, quit_rx) = chan::bounded::<()>(0);
///     tx.send(7).unwrap();
///     let got = select! {
///         recv(rx) -> v => v.ok(),
///         recv(quit_rx) -> _ => None,
///         default(Duration::from_millis(10)) => None,
///     };
///     assert_eq!(got, Some(7));
///     drop(quit_tx);
/// });
/// ```
///
/// | case                          | ready when                              | `res` is                      |
/// |-------------------------------|-----------------------------------------|-------------------------------|
/// | `recv(rx) -> res => expr`     | a value is there, or `rx`'s channel is closed and drained | `Result<T, RecvError>` |
/// | `send(tx, v) -> res => expr`  | a receiver or room is there, or the channel is closed | `Result<(), SendError<T>>` (the value comes back) |
/// | `default => expr`             | no other case is ready (Go's `default`) |                               |
/// | `default(timeout) => expr`    | no other case got ready within `timeout` |                              |
///
/// Among cases ready together the choice is random, as in Go. Without a `default` the select
/// waits; `select! {}` waits forever (until the runtime shuts down). `rx` and `tx` may be
/// receivers and senders or references to them, including temporaries such as
/// `gort::time::after(d)` or `ctx.done()`; channel values must be `'static`. Every channel and
/// value expression is evaluated once, in order, before the select starts. Bodies run after
/// the select has finished, so they may `break`, `continue`, `return` or use `?`.
#[macro_export]
macro_rules! select {
    // Parsing: cases gather in [..], the default in (..).
    (@parse [$($cases:tt)*] ($($def:tt)*)) => {
        $crate::select!(@bind [$($cases)*] [] ($($def)*))
    };
    (@parse [$($cases:tt)*] ($($def:tt)*)
        recv($rx:expr) -> $res:pat => $body:block, $($rest:tt)*) => {
        $crate::select!(@parse [$($cases)* (case recv ($rx) $res => $body)] ($($def)*) $($rest)*)
    };
    (@parse [$($cases:tt)*] ($($def:tt)*)
        recv($rx:expr) -> $res:pat => $body:block $($rest:tt)*) => {
        $crate::select!(@parse [$($cases)* (case recv ($rx) $res => $body)] ($($def)*) $($rest)*)
    };
    (@parse [$($cases:tt)*] ($($def:tt)*)
        recv($rx:expr) -> $res:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::select!(@parse [$($cases)* (case recv ($rx) $res => { $body })] ($($def)*)
            $($($rest)*)?)
    };
    (@parse [$($cases:tt)*] ($($def:tt)*)
        send($tx:expr, $v:expr) -> $res:pat => $body:block, $($rest:tt)*) => {
        $crate::select!(@parse [$($cases)* (case send ($tx, $v) $res => $body)] ($($def)*)
            $($rest)*)
    };
    (@parse [$($cases:tt)*] ($($def:tt)*)
        send($tx:expr, $v:expr) -> $res:pat => $body:block $($rest:tt)*) => {
        $crate::select!(@parse [$($cases)* (case send ($tx, $v) $res => $body)] ($($def)*)
            $($rest)*)
    };
    (@parse [$($cases:tt)*] ($($def:tt)*)
        send($tx:expr, $v:expr) -> $res:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::select!(@parse [$($cases)* (case send ($tx, $v) $res => { $body })] ($($def)*)
            $($($rest)*)?)
    };
    (@parse [$($cases:tt)*] () default => $body:block, $($rest:tt)*) => {
        $crate::select!(@parse [$($cases)*] (now $body) $($rest)*)
    };
    (@parse [$($cases:tt)*] () default => $body:block $($rest:tt)*) => {
        $crate::select!(@parse [$($cases)*] (now $body) $($rest)*)
    };
    (@parse [$($cases:tt)*] () default => $body:expr $(, $($rest:tt)*)?) => {
        $crate::select!(@parse [$($cases)*] (now { $body }) $($($rest)*)?)
    };
    (@parse [$($cases:tt)*] () default($t:expr) => $body:block, $($rest:tt)*) => {
        $crate::select!(@parse [$($cases)*] (after ($t) $body) $($rest)*)
    };
    (@parse [$($cases:tt)*] () default($t:expr) => $body:block $($rest:tt)*) => {
        $crate::select!(@parse [$($cases)*] (after ($t) $body) $($rest)*)
    };
    (@parse [$($cases:tt)*] () default($t:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::select!(@parse [$($cases)*] (after ($t) { $body }) $($($rest)*)?)
    };
    (@parse [$($cases:tt)*] ($($def:tt)+) default $($rest:tt)*) => {
        ::core::compile_error!("select!: more than one `default` case")
    };
    (@parse [$($cases:tt)*] ($($def:tt)*) $($rest:tt)+) => {
        ::core::compile_error!(
            "select!: expected `recv(rx) -> res => expr`, `send(tx, v) -> res => expr`, \
             `default => expr` or `default(timeout) => expr`"
        )
    };

    // Binding: each channel expression is evaluated once, in order, and borrowed (`ref`) so a
    // temporary such as `time::after(d)` lives for the whole select.
    (@bind [($c:ident recv ($rx:expr) $res:pat => $body:block) $($rest:tt)*]
        [$($bound:tt)*] $def:tt) => {
        match $rx {
            ref rx => {
                let mut $c = $crate::chan::RecvCase::new(rx);
                $crate::select!(@bind [$($rest)*] [$($bound)* ($c $res => $body)] $def)
            }
        }
    };
    (@bind [($c:ident send ($tx:expr, $v:expr) $res:pat => $body:block) $($rest:tt)*]
        [$($bound:tt)*] $def:tt) => {
        match $tx {
            ref tx => {
                let mut $c = $crate::chan::SendCase::new(tx, $v);
                $crate::select!(@bind [$($rest)*] [$($bound)* ($c $res => $body)] $def)
            }
        }
    };
    (@bind [] [$(($c:ident $res:pat => $body:block))*] $def:tt) => {{
        $crate::chan::select(
            &mut [$(&mut $c as &mut dyn $crate::chan::Case),*],
            $crate::select!(@mode $def),
        );
        $(let $c = $c.into_result();)*
        $crate::select!(@dispatch [$(($c $res => $body))*] $def)
    }};

    (@mode ()) => { $crate::chan::Mode::Block };
    (@mode (now $body:block)) => { $crate::chan::Mode::NonBlock };
    (@mode (after ($t:expr) $body:block)) => {
        $crate::chan::Mode::Until(::std::time::Instant::now() + $t)
    };

    // Dispatch: the completed case's body, else the default's.
    (@dispatch [($c:ident $res:pat => $body:block) $($rest:tt)*] $def:tt) => {
        if let ::core::option::Option::Some(res) = $c {
            let $res = res;
            $body
        } else {
            $crate::select!(@dispatch [$($rest)*] $def)
        }
    };
    (@dispatch [] ()) => {
        ::core::unreachable!("select!: a select without default returned with no case")
    };
    (@dispatch [] (now $body:block)) => { $body };
    (@dispatch [] (after ($t:expr) $body:block)) => { $body };

    // Entry.
    ($($tokens:tt)*) => {
        $crate::select!(@parse [] () $($tokens)*)
    };
}
