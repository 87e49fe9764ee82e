//! The simulated world: a shared `MemServer`, several clients (the real engine over in-memory
//! storage, each behind its own faulty network), and a seeded scheduler that interleaves their
//! local writes, sync rounds, pulls, crashes and connectivity changes one step at a time.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use ferry::core::sync::flush::RoundEnd;
use ferry::core::sync::report::Report;
use ferry::core::{
    CollectionConfig, ConflictPolicy, Engine, MemoryStorage, Record, Storage, StoreConfig, TieRule,
    Txn, UpdateMethod,
};
use serde_json::Value;

use super::net::{Shared, SimNet};
use super::rng::{Rng, SimEnv};
pub use super::servers::ServerKind;
use crate::mem_server::MemServer;

pub type Db = Engine<MemoryStorage, SimEnv>;

pub const COLLECTIONS: [&str; 2] = ["todos", "notes"];
pub const FIELDS: [&str; 3] = ["a", "b", "c"];
pub const T0: f64 = 1_700_000_000_000.0;
/// A field of notes that refers to a todo (its id, rewritten when a temporary id is replaced).
pub const REF: &str = "todo";

/// Whether to also re-create ids this client deleted (`FERRY_SIM_KNOWN_BUGS=1`). Off by default:
/// a record deleted here, refused delete or conflict-kept there, and created again under the same
/// id still trips the checker on a few seeds in 300 (seeds 20 and 72 at 400 steps): the id then
/// names two records at once, and what `get(oldId)` should return is not settled yet.
pub fn known_bugs() -> bool {
    std::env::var_os("FERRY_SIM_KNOWN_BUGS").is_some()
}

/// Polls a future once: `None` if it is waiting (only a simulated crash mid-request does).
pub fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Runs a future that must not wait.
pub fn now<F: Future>(f: F) -> F::Output {
    poll_once(f).expect("a future was not ready at once")
}

/// Why a local write no longer has to be visible locally.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fate {
    /// The server acknowledged a write carrying it.
    Delivered,
    /// The same client wrote the field again, replaced or deleted the record.
    Superseded,
    /// A conflict or rejection event for the record said so.
    Justified,
}

/// One local write, tracked until its fate is known.
#[derive(Clone, Debug)]
pub struct Written {
    pub c: String,
    /// The record's id when written (followed through id changes by `Client::key`).
    pub handle: String,
    /// The field set, or `None` for a delete.
    pub field: Option<String>,
    /// The unique value set (empty for a delete).
    pub value: String,
    pub step: usize,
    pub fate: Option<Fate>,
}

pub struct Client {
    pub storage: MemoryStorage,
    pub db: Option<Db>,
    pub net: SimNet,
    pub offline: Rc<Cell<bool>>,
    pub next_flush_at: f64,
    /// (collection, old id) → new id, from the reports' id changes.
    pub aliases: HashMap<(String, String), String>,
    pub ledger: Vec<Written>,
}

impl Client {
    /// The current id of a record first known as `handle`.
    pub fn key(&self, c: &str, handle: &str) -> String {
        let mut k = handle.to_string();
        for _ in 0..16 {
            match self.aliases.get(&(c.to_string(), k.clone())) {
                Some(next) => k = next.clone(),
                None => break,
            }
        }
        k
    }
    pub fn db(&self) -> &Db {
        self.db.as_ref().expect("a running client")
    }
}

/// The knobs of one run.
#[derive(Clone, Debug)]
pub struct Setup {
    pub seed: u64,
    pub clients: usize,
    pub policy: ConflictPolicy,
    pub tie_local: bool,
    pub batch: bool,
    pub server: ServerKind,
}

impl Setup {
    /// The setup a seed stands for: policies, batching and client counts rotate with it.
    pub fn of(seed: u64) -> Setup {
        Setup {
            seed,
            clients: 2 + (seed % 3) as usize,
            policy: [
                ConflictPolicy::Merge,
                ConflictPolicy::ServerWins,
                ConflictPolicy::ClientWins,
            ][(seed % 3) as usize],
            tie_local: seed % 5 == 4,
            batch: (seed / 3) % 2 == 1,
            server: ServerKind::Reference,
        }
    }
    pub fn store(&self) -> StoreConfig {
        let cols = COLLECTIONS
            .iter()
            .map(|c| {
                let mut cfg = CollectionConfig::new(c, &format!("/api/{c}"));
                cfg.conflict = self.policy;
                cfg.tie = if self.tie_local {
                    TieRule::Local
                } else {
                    TieRule::Server
                };
                if *c == "notes" {
                    cfg.update_method = UpdateMethod::Patch;
                    cfg.refs.insert(REF.into(), "todos".into());
                }
                cfg
            })
            .collect();
        let mut store = StoreConfig::new("sim", cols);
        if self.batch {
            store.batch_url = Some("/api/$batch".into());
            store.batch_size = 3;
        }
        store
    }
}

/// Figures of one or many runs.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub seeds: u64,
    pub steps: u64,
    pub writes: u64,
    pub rounds: u64,
    pub pulls: u64,
    pub crashes: u64,
    pub acked: u64,
    pub conflicts: u64,
    pub rejections: u64,
    pub id_changes: u64,
    pub checks: u64,
    pub faults: BTreeMap<&'static str, u64>,
}

impl Figures {
    pub fn add(&mut self, o: &Figures) {
        self.seeds += o.seeds;
        self.steps += o.steps;
        self.writes += o.writes;
        self.rounds += o.rounds;
        self.pulls += o.pulls;
        self.crashes += o.crashes;
        self.acked += o.acked;
        self.conflicts += o.conflicts;
        self.rejections += o.rejections;
        self.id_changes += o.id_changes;
        self.checks += o.checks;
        for (k, v) in &o.faults {
            *self.faults.entry(k).or_insert(0) += v;
        }
    }
}

pub struct World {
    pub setup: Setup,
    pub rng: Rng,
    pub server: MemServer,
    pub shared: Rc<Shared>,
    pub clock: Rc<Cell<f64>>,
    pub clients: Vec<Client>,
    pub step_no: usize,
    pub log: Vec<String>,
    pub fig: Figures,
    /// Test of the checker itself: when set, conflict and rejection events justify nothing.
    pub ignore_events: bool,
    /// Conflicts reported over a server record equal to the change's base: nothing changed
    /// there (every write in the simulation sets a value never used before), so the conflict
    /// is of Ferry's own making, and `serverWins` drops the local change for nothing.
    pub needless: Vec<String>,
    counter: u64,
}

impl World {
    pub fn new(setup: Setup) -> World {
        let server = MemServer::new();
        setup.server.apply(&server);
        let shared = Shared::new(setup.seed);
        shared
            .post_copies
            .set(setup.server != super::servers::ServerKind::Keyless);
        shared
            .sencha
            .set(setup.server == super::servers::ServerKind::Sencha);
        shared.paged.set(matches!(
            setup.server,
            super::servers::ServerKind::Paged | super::servers::ServerKind::Sencha
        ));
        let clock = Rc::new(Cell::new(T0));
        let mut rng = Rng::new(setup.seed);
        let mut clients = Vec::new();
        for i in 0..setup.clients {
            let storage = MemoryStorage::new();
            let offline = Rc::new(Cell::new(false));
            let net = SimNet {
                client: i,
                server: server.clone(),
                shared: shared.clone(),
                offline: offline.clone(),
                storage: storage.clone(),
                crashed: Cell::new(false),
                may_crash: Cell::new(false),
            };
            let env = SimEnv::new(clock.clone(), rng.next_u64());
            let db = now(Engine::open(setup.store(), storage.clone(), env)).expect("open");
            clients.push(Client {
                storage,
                db: Some(db),
                net,
                offline,
                next_flush_at: 0.0,
                aliases: HashMap::new(),
                ledger: Vec::new(),
            });
        }
        World {
            setup,
            rng,
            server,
            shared,
            clock,
            clients,
            step_no: 0,
            log: Vec::new(),
            fig: Figures::default(),
            ignore_events: false,
            needless: Vec::new(),
            counter: 0,
        }
    }

    pub fn note(&mut self, line: String) {
        self.log.push(format!("#{} {line}", self.step_no));
    }

    fn fresh_value(&mut self, ci: usize) -> String {
        self.counter += 1;
        format!("v{ci}.{}", self.counter)
    }

    /// Drops the engine (its memory) and opens a new one over the same storage.
    pub fn crash(&mut self, ci: usize) {
        self.fig.crashes += 1;
        let seed = self.rng.next_u64();
        let cl = &mut self.clients[ci];
        cl.db = None;
        cl.net.crashed.set(false);
        // A commit fault armed by the dead process dies with it.
        let _ = now(async { cl.storage.begin(true).await?.commit().await });
        let env = SimEnv::new(self.clock.clone(), seed);
        let db = now(Engine::open(self.setup.store(), cl.storage.clone(), env));
        cl.db = Some(db.expect("reopen after a crash"));
        cl.next_flush_at = 0.0;
        self.note(format!("c{ci} crashed and restarted"));
    }

    /// Takes in what a sync step reported: id changes, and the events that may drop local writes.
    pub fn absorb(&mut self, ci: usize, r: &Report) {
        self.fig.acked += r.acked as u64;
        self.fig.conflicts += r.conflicts.len() as u64;
        self.fig.rejections += r.rejected.len() as u64;
        self.fig.id_changes += r.ids.len() as u64;
        let cl = &mut self.clients[ci];
        for ch in &r.ids {
            let to = match &ch.to {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            cl.aliases
                .insert((ch.collection.clone(), ch.from.clone()), to);
        }
        let mut hit: Vec<(String, String, String)> = Vec::new();
        if self.ignore_events {
            return;
        }
        let bare = |r: &Record| {
            let mut r = r.clone();
            r.remove("version");
            r
        };
        for e in &r.conflicts {
            if let (Some(b), Some(s)) = (&e.base, &e.server) {
                if bare(b) == bare(s) {
                    self.needless.push(format!(
                        "c{ci}: a conflict on {}/{} over a server record equal to its base: {e:?}",
                        e.collection, e.id
                    ));
                }
            }
        }
        hit.extend(r.conflicts.iter().map(|e| {
            let what = format!(
                "conflict ({:?}; resent {}; server {:?}; result {:?})",
                e.kind, e.resent, e.server, e.result
            );
            (
                e.collection.clone(),
                ferry::core::id_key(&e.id).unwrap_or_default(),
                what,
            )
        }));
        hit.extend(r.rejected.iter().map(|e| {
            let what = format!("rejection ({:?} {})", e.kind, e.status);
            (e.collection.clone(), e.record_id.clone(), what)
        }));
        let mut lines = Vec::new();
        for ch in &r.ids {
            lines.push(format!(
                "c{ci} id change {}/{} -> {}",
                ch.collection, ch.from, ch.to
            ));
        }
        for (c, id, what) in hit {
            let id = cl.key(&c, &id);
            for i in 0..cl.ledger.len() {
                let w = &cl.ledger[i];
                if w.fate.is_none() && w.c == c && cl.key(&c, &w.handle) == id {
                    cl.ledger[i].fate = Some(Fate::Justified);
                }
            }
            lines.push(format!("c{ci} {what} on {c}/{id}"));
        }
        for l in lines {
            self.note(l);
        }
    }

    /// One sync round on client `ci` (it may crash mid-request); how it ended, if it did.
    pub fn sync_round(&mut self, ci: usize) -> Option<RoundEnd> {
        let t = self.clock.get();
        if t < self.clients[ci].next_flush_at {
            self.note(format!("c{ci} waits (backoff)"));
            return None;
        }
        self.fig.rounds += 1;
        let cl = &self.clients[ci];
        cl.net.may_crash.set(true);
        // What the driver hands to the app as each batch's answers are committed: it reaches
        // the app even when the round then crashes.
        let mut report = Report::default();
        let out = poll_once(
            cl.db()
                .flush_round_emitting(&cl.net, &[], &mut |r| report.extend(r)),
        );
        cl.net.may_crash.set(false);
        match out {
            None => {
                assert!(cl.net.crashed.get(), "a flush waited without a crash");
                self.absorb(ci, &report);
                self.crash(ci);
                None
            }
            Some(Ok(end)) => {
                self.note(format!("c{ci} round: {end:?}, acked {}", report.acked));
                self.absorb(ci, &report);
                if let RoundEnd::Wait { retry_at, .. } = &end {
                    self.clients[ci].next_flush_at = *retry_at;
                }
                Some(end)
            }
            Some(Err(e)) => {
                self.note(format!("c{ci} round failed: {e}"));
                // A batch committed before the failure was handed over all the same.
                self.absorb(ci, &report);
                assert_eq!(e.kind, ferry::core::ErrorKind::Storage, "round: {e}");
                None
            }
        }
    }

    /// Pulls collection `c` on client `ci`.
    pub fn pull(&mut self, ci: usize, c: &str) -> bool {
        self.fig.pulls += 1;
        let cl = &self.clients[ci];
        match now(cl.db().pull(&cl.net, &[], c)) {
            Ok(r) => {
                self.note(format!("c{ci} pulled {c}: {} changes", r.changes.len()));
                self.absorb(ci, &r);
                true
            }
            Err(e) => {
                self.note(format!("c{ci} pull {c} failed: {e}"));
                false
            }
        }
    }

    /// A random local write on client `ci`.
    pub fn local_write(&mut self, ci: usize) {
        use ferry::core::Op;
        let c = *self.rng.pick(&COLLECTIONS);
        let all: Vec<Record> = now(self.clients[ci].db().all(c)).expect("all");
        let ids: Vec<String> = all
            .iter()
            .filter_map(|r| match r.get("id") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
            .collect();
        let roll = self.rng.below(100);
        let mut fields: Vec<&str> = FIELDS
            .iter()
            .copied()
            .filter(|_| self.rng.chance(0.5))
            .collect();
        if fields.is_empty() {
            fields.push(*self.rng.pick(&FIELDS));
        }
        let mut rec = Record::new();
        for f in &fields {
            let v = self.fresh_value(ci);
            rec.insert(f.to_string(), Value::String(v));
        }
        if c == "notes" && self.rng.chance(0.3) {
            let todos: Vec<Record> = now(self.clients[ci].db().all("todos")).expect("all");
            if !todos.is_empty() {
                let t = self.rng.pick(&todos);
                rec.insert(REF.into(), t.get("id").cloned().unwrap_or(Value::Null));
            }
        }
        // Ids this client deleted and that are gone here: creating one again is a replace.
        let gone: Vec<String> = self.clients[ci]
            .ledger
            .iter()
            .filter(|w| w.field.is_none() && w.c == c)
            .map(|w| self.clients[ci].key(c, &w.handle))
            .filter(|k| !k.starts_with("tmp-") && !ids.contains(k))
            .collect();
        let (op, target) = if ids.is_empty() || roll < 30 {
            if !gone.is_empty() && self.rng.chance(0.2) && known_bugs() {
                let id = self.rng.pick(&gone).clone();
                rec.insert("id".into(), Value::String(id));
            } else if self.rng.chance(0.15) {
                self.counter += 1;
                let id = format!("c{ci}-{}", self.counter);
                rec.insert("id".into(), Value::String(id));
            }
            (Op::Create(rec.clone()), None)
        } else {
            let id = self.rng.pick(&ids).clone();
            match roll {
                30..=74 => (Op::Update(id.clone(), rec.clone()), Some(id)),
                75..=84 => (Op::Replace(id.clone(), rec.clone()), Some(id)),
                _ => (Op::Delete(id.clone()), Some(id)),
            }
        };
        let desc = format!("{op:?}");
        let res = now(self.clients[ci].db().write(c, vec![op.clone()]));
        let (out, _) = match res {
            Ok(v) => v,
            Err(e) => panic!("local write {desc} on c{ci} failed: {e}"),
        };
        self.fig.writes += 1;
        self.note(format!("c{ci} {c} {desc}"));
        let step = self.step_no;
        let cl = &mut self.clients[ci];
        let handle = match (&target, out.first()) {
            (Some(id), _) => id.clone(),
            (None, Some(Some(r))) => match r.get("id") {
                Some(Value::String(s)) => s.clone(),
                other => panic!("created record without a string id: {other:?}"),
            },
            _ => panic!("create returned nothing"),
        };
        let key = cl.key(c, &handle);
        let whole = !matches!(op, Op::Update(..));
        for w in cl
            .ledger
            .iter_mut()
            .filter(|w| w.fate.is_none() && w.c == c)
        {
            let same = {
                let mut k = w.handle.clone();
                for _ in 0..16 {
                    match cl.aliases.get(&(c.to_string(), k.clone())) {
                        Some(n) => k = n.clone(),
                        None => break,
                    }
                }
                k == key
            };
            let field_hit = w.field.as_deref().is_some_and(|f| rec.contains_key(f));
            if same && (whole || field_hit) {
                w.fate = Some(Fate::Superseded);
            }
        }
        match op {
            Op::Delete(_) => cl.ledger.push(Written {
                c: c.into(),
                handle,
                field: None,
                value: String::new(),
                step,
                fate: None,
            }),
            _ => {
                for (f, v) in rec.iter().filter(|(f, _)| *f != "id" && *f != REF) {
                    cl.ledger.push(Written {
                        c: c.into(),
                        handle: handle.clone(),
                        field: Some(f.clone()),
                        value: v.as_str().unwrap_or_default().to_string(),
                        step,
                        fate: None,
                    });
                }
            }
        }
    }

    /// Delivers held-back requests (all of them, or one at random).
    pub fn deliver_delayed(&mut self, all: bool) {
        let taken: Vec<(usize, ferry::core::sync::http::HttpRequest)> = {
            let mut q = self.shared.delayed.borrow_mut();
            if q.is_empty() {
                return;
            }
            if all {
                std::mem::take(&mut *q)
            } else {
                let i = self.rng.below(q.len());
                vec![q.remove(i)]
            }
        };
        for (ci, req) in taken {
            let line = format!("late {} {} from c{ci}", req.method, req.url);
            let res = super::net::deliver(&self.server, &self.shared, ci, req);
            self.note(format!("{line}: {:?}", res.map(|r| r.status)));
        }
    }
}
