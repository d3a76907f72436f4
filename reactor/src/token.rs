//! The 64-bit word epoll carries for each fd: which record, and which life of that record.
//!
//! Mirrors: `epoll_event.data` in `runtime/netpoll_epoll.go` and `runtime/tagptr.go` (Go 1.21),
//! where `data` is `taggedPointerPack(pd, pd.fdseq)`. We need no pointer tricks: the record is
//! named by its slot index in the [`PollCache`](crate::poll_cache::PollCache), and the tag is the
//! slot's generation.
//!
//! ```text
//!  63                              32 31                               0
//! +----------------------------------+----------------------------------+
//! |   generation (bumped per close)  |   slot index (< u32::MAX)        |
//! +----------------------------------+----------------------------------+
//! ```
//!
//! Invariants:
//! - A slot index is never `u32::MAX`, so no record's token equals [`Token::WAKEUP`] (Go needed
//!   a fix for exactly that confusion on 32-bit, #72900).
//! - The generation of a slot changes every time its record is closed, so an event fetched by
//!   one `epoll_wait` before a close is recognised as stale after the slot is reused (#59545).

#![forbid(unsafe_code)]

/// `(slot index, generation)` packed into the `u64` of `epoll_event.data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[doc(alias = "taggedPointer")]
pub struct Token(u64);

impl Token {
    /// The wake-up pipe's token. No record ever has it.
    pub const WAKEUP: Token = Token(u64::MAX);

    /// The largest slot index a record may have.
    pub const MAX_INDEX: usize = u32::MAX as usize - 1;

    /// Packs a slot index and its generation.
    ///
    /// # Panics
    /// If `index > MAX_INDEX` (the cache refuses such an index first).
    pub fn new(index: usize, generation: u32) -> Token {
        assert!(index <= Self::MAX_INDEX, "reactor: slot index {index} out of range");
        Token(((generation as u64) << 32) | index as u64)
    }

    /// The slot index.
    pub fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }

    /// The generation the slot had when this token was made.
    pub fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The raw word given to epoll.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The token named by a raw epoll word.
    pub fn from_u64(raw: u64) -> Token {
        Token(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn packs_and_unpacks() {
        for (i, g) in [(0, 0), (1, 7), (Token::MAX_INDEX, u32::MAX), (12345, 1 << 31)] {
            let t = Token::new(i, g);
            assert_eq!((t.index(), t.generation()), (i, g));
            assert_eq!(Token::from_u64(t.as_u64()), t);
            assert_ne!(t, Token::WAKEUP);
        }
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn wakeup_index_is_refused() {
        let _ = Token::new(u32::MAX as usize, 0);
    }
}
