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
//! that became the server's); a flush and a retry of rejected changes wait for all of them, so
//! that nothing is sent or queued past a position whose create is still to be written.

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
}

/// The gates of the records whose creates are under way, by collection and record key.
#[derive(Default)]
pub(crate) struct Gates(RefCell<HashMap<(String, String), Rc<Gate>>>);

impl Gates {
    /// What a write of `keys` of `c`, called now, waits for: the creates of those records still
    /// under way.
    pub(crate) fn waits<'k>(&self, c: &str, keys: impl IntoIterator<Item = &'k str>) -> Vec<Wait> {
        let open = self.0.borrow();
        if open.is_empty() {
            return Vec::new();
        }
        keys.into_iter()
            .filter_map(|k| open.get(&(c.to_string(), k.to_string())))
            .map(|g| Wait(g.clone()))
            .collect()
    }

    /// Every create under way, of collection `c` or of any: what a write that may name a record
    /// by another id (an alias) waits for, and a flush (a position taken before the redo of such
    /// a create must not be sent after positions taken later).
    pub(crate) fn waits_all(&self, c: Option<&str>) -> Vec<Wait> {
        let open = self.0.borrow();
        open.iter()
            .filter(|((gc, _), _)| c.is_none_or(|c| c == gc))
            .map(|(_, g)| Wait(g.clone()))
            .collect()
    }

    /// Closes the gate of record `key` of `c` until the guard drops. A gate closed already (an
    /// earlier create of the same id, still under way) is waited for by the caller first
    /// ([`Gates::waits`]), so writes called after this one wait for both.
    pub(crate) fn close(&self, c: &str, key: &str) -> Closed<'_> {
        let key = (c.to_string(), key.to_string());
        let gate = Rc::new(Gate::default());
        self.0.borrow_mut().insert(key.clone(), gate.clone());
        Closed {
            gates: self,
            key,
            gate,
        }
    }
}

/// A closed gate; dropping it opens the gate and wakes the writes waiting there.
pub(crate) struct Closed<'g> {
    gates: &'g Gates,
    key: (String, String),
    gate: Rc<Gate>,
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        self.gate.open.set(true);
        for w in self.gate.waiting.take() {
            w.wake();
        }
        let mut open = self.gates.0.borrow_mut();
        if open
            .get(&self.key)
            .is_some_and(|g| Rc::ptr_eq(g, &self.gate))
        {
            open.remove(&self.key);
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
