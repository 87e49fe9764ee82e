//! Outbox positions handed out without touching storage on every write.
//!
//! Every engine on a database (one per tab) takes a block of positions at a time: one read and
//! one write of the clock move its `seq` past the block, so no other engine hands them out, and
//! the engine then numbers its writes from the block in memory. A write used to read and write
//! the clock itself, which was most of what a single write cost over writing its row and its
//! outbox entry. Positions still grow with every write of one engine; two engines' blocks
//! interleave, which is fine for different records (each record's own mutations are what must
//! stay in order, and a write that would number a record's change below one it already has
//! pending takes a new block above it).

use std::cell::RefCell;
use std::rc::Rc;

use super::super::clock::{Env, Hlc};

/// Positions reserved at a time. A block left when the engine closes is never used: positions
/// are 64-bit, and temporary ids show ten digits, enough for millions of blocks.
pub(crate) const BLOCK: u64 = 1024;

/// Positions this engine holds, and its clock.
#[derive(Debug, Clone, Default)]
pub(crate) struct Alloc {
    /// The database's node id (the prefix of mutation ids and temporary ids), once known.
    pub(crate) node: Option<String>,
    /// The next position to hand out, and the end of the block (exclusive).
    pub(crate) next: u64,
    pub(crate) end: u64,
    /// The last clock reading of this engine.
    pub(crate) hlc: Hlc,
}

/// An engine's [`Alloc`], shared with its transactions.
pub(crate) type SharedAlloc = Rc<RefCell<Alloc>>;

impl Alloc {
    /// The next clock reading, given the wall clock.
    pub(crate) fn tick(&mut self, env: &impl Env) -> Hlc {
        self.hlc = self.hlc.tick(env.now_ms().max(0.0) as u64);
        self.hlc
    }

    /// The next position above `floor` from the block, with the node id, if the block has one.
    pub(crate) fn take(&mut self, floor: u64) -> Option<(u64, String)> {
        let node = self.node.clone()?;
        if self.next >= self.end || self.next <= floor {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        Some((seq, node))
    }

    /// Takes block `[start, end)` of `node` (reserved in storage by a committed transaction),
    /// unless the block held now is further on.
    pub(crate) fn adopt(&mut self, node: String, start: u64, end: u64, hlc: Hlc) {
        self.hlc = self.hlc.max(hlc);
        if self.next < self.end && self.next > start {
            return;
        }
        self.node = Some(node);
        self.next = start;
        self.end = end;
    }
}
