//! Call order for the writes of one record around a create that may have to be done twice.
//!
//! A create with the app's id writes without reading first and commits at once (`quick.rs`); when
//! the id turns out to be in use, its transaction aborts and the create is done again, the
//! general way, in a new transaction. IndexedDB runs transactions in the order they are made, so
//! a write of the same record called after the create, whose transaction was made meanwhile,
//! would run before that second try (a delete, then the create succeeding as "deleted and created
//! again" where it should have failed). So such a create closes its record's gate until it is
//! done, and a write of that record called meanwhile waits at the gate before it makes its
//! transaction. A create of another id does not wait: its order in the outbox comes from the
//! position it takes when called (`tx/alloc.rs`). An update, a replace or a delete waits for every
//! create of its collection under way, since it may name the record by an alias (a temporary id
//! that became the server's), and so does a create under an id in the form of Ferry's temporary
//! ids (it reads aliases in its own transaction); a retry of rejected changes waits for all of
//! them. A write that waits and closes no gate of its own (an update, a delete, a batch, a retry)
//! queues a gate of its collection (of all, for a retry) while it waits ([`Gates::queue`]): a
//! write called after it, a create of any id included, waits for it to make its transaction, so
//! that a create cannot overtake a delete called before it and be refused. A flush sends nothing
//! at or past the lowest position a create under way or a queued write holds ([`Gates::lowest`]):
//! writes called after them may be stored before they are. All of this is one tab's: a flush led
//! by another tab does not see these gates.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Gate {
    open: Cell<bool>,
    waiting: RefCell<Vec<Waker>>,
    /// The outbox position the create (or the queued write) took, once it took one.
    at: Cell<Option<u64>>,
}

impl Gate {
    fn open(&self) {
        self.open.set(true);
        for w in self.waiting.take() {
            w.wake();
        }
    }
}

/// A record: its collection and its key.
type RecordKey = (String, String);

/// The gates of the creates under way, by record (two creates of one id may be under way at
/// once).
#[derive(Default)]
pub(crate) struct Gates(
    RefCell<HashMap<RecordKey, Vec<Rc<Gate>>>>,
    /// The gates of writes waiting at gates, not yet in a transaction ([`Gates::queue`]), with
    /// their collection (`None`: every collection).
    RefCell<Vec<(Option<String>, Rc<Gate>)>>,
);

impl Gates {
    /// What a create of `keys` of `c`, called now, waits for: the creates of those records still
    /// under way, and the writes of `c` queued at gates.
    pub(crate) fn waits<'k>(&self, c: &str, keys: impl IntoIterator<Item = &'k str>) -> Vec<Wait> {
        let open = self.0.borrow();
        let mut out = self.queued(Some(c));
        if !open.is_empty() {
            let own = keys
                .into_iter()
                .filter_map(|k| open.get(&(c.to_string(), k.to_string())));
            out.extend(own.flatten().map(|g| Wait(g.clone())));
        }
        out
    }

    /// Every create under way and every write queued, of collection `c` or of any: what a write
    /// that may name a record by another id (an alias) waits for.
    pub(crate) fn waits_all(&self, c: Option<&str>) -> Vec<Wait> {
        let open = self.0.borrow();
        let mut out = self.queued(c);
        let creates = open.iter().filter(|((gc, _), _)| c.is_none_or(|c| c == gc));
        out.extend(creates.flat_map(|(_, gs)| gs.iter().map(|g| Wait(g.clone()))));
        out
    }

    /// The writes queued that a write of `c` (`None`: of any collection) comes after.
    fn queued(&self, c: Option<&str>) -> Vec<Wait> {
        let queued = self.1.borrow();
        let before = |qc: &Option<String>| match (c, qc) {
            (Some(c), Some(qc)) => c == qc,
            _ => true,
        };
        queued
            .iter()
            .filter(|(qc, _)| before(qc))
            .map(|(_, g)| Wait(g.clone()))
            .collect()
    }

    /// The lowest outbox position a create under way holds: a flush that made its transaction
    /// just now sends nothing from there on (what lies above may have been stored before that
    /// create is).
    pub(crate) fn lowest(&self) -> Option<u64> {
        let open = self.0.borrow();
        let queued = self.1.borrow();
        let gates = open.values().flatten().chain(queued.iter().map(|(_, g)| g));
        gates.filter_map(|g| g.at.get()).min()
    }

    /// Queues a write of `c` (`None`: of any collection) that waits at gates and closes none of
    /// its own, until the guard drops (once its transaction exists: IndexedDB runs it before
    /// those made later). Writes of `c` called meanwhile wait for it; `seq`, the lowest position
    /// it took, bounds a flush ([`Gates::lowest`]). Called after the write took its own waits,
    /// so it never waits for itself.
    pub(crate) fn queue(&self, c: Option<&str>, seq: Option<u64>) -> Queued<'_> {
        let gate = Rc::new(Gate::default());
        gate.at.set(seq);
        self.1
            .borrow_mut()
            .push((c.map(str::to_string), gate.clone()));
        Queued { gates: self, gate }
    }

    /// Closes a gate of record `key` of `c` until the guard drops. A gate closed already (an
    /// earlier create of the same id, still under way) is waited for by the caller first
    /// ([`Gates::waits`]), so writes called after this one wait for both.
    pub(crate) fn close(&self, c: &str, key: &str) -> Closed<'_> {
        let key = (c.to_string(), key.to_string());
        let gate = Rc::new(Gate::default());
        self.0
            .borrow_mut()
            .entry(key.clone())
            .or_default()
            .push(gate.clone());
        Closed {
            gates: self,
            key,
            gate,
        }
    }
}

/// A queued write's gate; dropping it opens the gate and lets its position go.
pub(crate) struct Queued<'g> {
    gates: &'g Gates,
    gate: Rc<Gate>,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.gate.open();
        self.gates
            .1
            .borrow_mut()
            .retain(|(_, g)| !Rc::ptr_eq(g, &self.gate));
    }
}

/// A closed gate; dropping it opens the gate and wakes the writes waiting there.
pub(crate) struct Closed<'g> {
    gates: &'g Gates,
    key: RecordKey,
    gate: Rc<Gate>,
}

impl Closed<'_> {
    /// Notes the outbox position the create took.
    pub(crate) fn at(&self, seq: u64) {
        self.gate.at.set(Some(seq));
    }
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        self.gate.open();
        let mut open = self.gates.0.borrow_mut();
        if let Some(gs) = open.get_mut(&self.key) {
            gs.retain(|g| !Rc::ptr_eq(g, &self.gate));
            if gs.is_empty() {
                open.remove(&self.key);
            }
        }
    }
}

/// Resolves when its gate opens.
pub(crate) struct Wait(Rc<Gate>);

impl Future for Wait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.open.get() {
            return Poll::Ready(());
        }
        self.0.waiting.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(std::sync::atomic::AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn poll(w: &mut Wait, waker: &Waker) -> bool {
        Pin::new(w).poll(&mut Context::from_waker(waker)).is_ready()
    }

    #[test]
    fn a_write_waits_for_the_create_of_its_record_only() {
        let gates = Gates::default();
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(count.clone());
        let held = gates.close("todos", "a");
        let mut waits = gates.waits("todos", ["a", "b"]);
        assert_eq!(waits.len(), 1, "only record a's create is under way");
        assert!(
            gates.waits("notes", ["a"]).is_empty(),
            "another collection's a"
        );
        assert!(!poll(&mut waits[0], &waker));
        drop(held);
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(poll(&mut waits[0], &waker));
        assert!(
            gates.waits("todos", ["a"]).is_empty(),
            "an open gate is forgotten"
        );
    }

    #[test]
    fn a_write_called_after_a_queued_one_of_its_collection_waits_for_it() {
        let gates = Gates::default();
        let waker = Waker::from(Arc::new(Count(0.into())));
        let queued = gates.queue(Some("todos"), None);
        let mut create = gates.waits("todos", ["x"]);
        assert_eq!(create.len(), 1, "a create of any id of todos waits");
        assert_eq!(gates.waits_all(Some("todos")).len(), 1);
        assert!(gates.waits("notes", ["x"]).is_empty(), "another collection");
        assert_eq!(gates.waits_all(None).len(), 1, "a flush or a retry waits");
        assert!(!poll(&mut create[0], &waker));
        drop(queued);
        assert!(poll(&mut create[0], &waker));
        assert!(
            gates.waits_all(None).is_empty(),
            "an open gate is forgotten"
        );
        let retry = gates.queue(None, None);
        assert_eq!(
            gates.waits("notes", ["x"]).len(),
            1,
            "a retry: every collection"
        );
        drop(retry);
    }

    #[test]
    fn the_lowest_position_held_is_the_flushs_bound() {
        let gates = Gates::default();
        assert_eq!(gates.lowest(), None);
        let a = gates.close("todos", "a");
        assert_eq!(gates.lowest(), None, "no position taken yet");
        a.at(12);
        let b = gates.close("notes", "b");
        b.at(7);
        assert_eq!(gates.lowest(), Some(7));
        drop(b);
        assert_eq!(gates.lowest(), Some(12));
        drop(a);
        assert_eq!(gates.lowest(), None);
        let held = gates.queue(Some("todos"), Some(30));
        assert_eq!(
            gates.lowest(),
            Some(30),
            "a write waiting at a gate holds its position"
        );
        drop(held);
        assert_eq!(gates.lowest(), None);
    }

    #[test]
    fn a_second_create_dropped_first_leaves_the_first_ones_gate_closed() {
        let gates = Gates::default();
        let waker = Waker::from(Arc::new(Count(0.into())));
        let first = gates.close("todos", "a");
        let second = gates.close("todos", "a");
        drop(second);
        let mut after = gates.waits("todos", ["a"]);
        assert_eq!(after.len(), 1, "the first create is still under way");
        assert!(!poll(&mut after[0], &waker));
        drop(first);
        assert!(poll(&mut after[0], &waker));
    }

    #[test]
    fn a_second_create_of_the_id_keeps_the_gate_closed_after_the_first() {
        let gates = Gates::default();
        let first = gates.close("todos", "a");
        let mut before = gates.waits("todos", ["a"]);
        let second = gates.close("todos", "a");
        drop(first);
        let waker = Waker::from(Arc::new(Count(0.into())));
        assert!(poll(&mut before[0], &waker));
        let mut after = gates.waits("todos", ["a"]);
        assert_eq!(after.len(), 1, "the second create is still under way");
        assert!(!poll(&mut after[0], &waker));
        drop(second);
        assert!(poll(&mut after[0], &waker));
    }
}
