//! The scheduler's step, the invariants checked after every step, and the final convergence.

use std::collections::{HashMap, HashSet};

use ferry::core::sync::flush::RoundEnd;
use ferry::core::Record;
use serde_json::Value;

use super::world::{now, Fate, Figures, ServerKind, Setup, World, Written, COLLECTIONS, T0};
use ferry::core::mutation::Kind;

impl World {
    /// One scheduler step: a random client does one random thing, then every invariant is checked.
    pub fn step(&mut self) -> Result<(), String> {
        self.step_no += 1;
        let dt = self.rng.below(1500) as f64;
        self.clock.set(self.clock.get() + dt);
        for (i, cl) in self.clients.iter().enumerate() {
            if cl.offline.get() && self.rng.chance(0.1) {
                cl.offline.set(false);
                self.log
                    .push(format!("#{} c{i} comes back online", self.step_no));
            }
        }
        let ci = self.rng.below(self.clients.len());
        match self.rng.below(100) {
            0..=37 => self.local_write(ci),
            38..=62 => {
                self.sync_round(ci);
            }
            63..=75 => {
                let c = *self.rng.pick(&COLLECTIONS);
                self.pull(ci, c);
            }
            76..=81 => {
                let off = !self.clients[ci].offline.get();
                self.clients[ci].offline.set(off);
                self.note(format!(
                    "c{ci} goes {}",
                    if off { "offline" } else { "online" }
                ));
            }
            82..=85 => self.crash(ci),
            86..=90 => {
                let all = self.rng.chance(0.3);
                self.deliver_delayed(all);
            }
            91..=93 => self.settle_rejected(ci),
            _ => {
                self.clock.set(self.clock.get() + 30_000.0);
                self.note("30 s pass".into());
            }
        }
        self.resolve_delivered();
        self.check()
    }

    /// Retries or discards one rejected mutation, as an app would.
    fn settle_rejected(&mut self, ci: usize) {
        let db = self.clients[ci].db();
        let list = now(db.rejected()).expect("rejected");
        let Some(item) = list.first().cloned() else {
            return;
        };
        let id = item.mutation_id.clone();
        if self.rng.chance(0.5) {
            let res = now(db.retry_rejected(&id));
            // A retried update of a record deleted meanwhile is refused: that is fine.
            self.note(format!(
                "c{ci} retries rejected {id}: {:?}",
                res.as_ref().map(|_| ())
            ));
            if res.is_ok() && item.kind != Kind::Create {
                // A new local write on the record: it supersedes what was pending there.
                let (c, step) = (item.collection.clone(), self.step_no);
                let cl = &mut self.clients[ci];
                let key = cl.key(&c, &item.record_id);
                let hit: Vec<usize> = (0..cl.ledger.len())
                    .filter(|i| {
                        let w = &cl.ledger[*i];
                        w.fate.is_none() && w.c == c && cl.key(&c, &w.handle) == key
                    })
                    .collect();
                for i in hit {
                    cl.ledger[i].fate = Some(Fate::Superseded);
                }
                if item.kind == Kind::Delete {
                    cl.ledger.push(Written {
                        c,
                        handle: key,
                        field: None,
                        value: String::new(),
                        step,
                        fate: None,
                    });
                }
            }
        } else {
            now(db.discard_rejected(&id)).expect("discard");
            self.note(format!("c{ci} discards rejected {id}"));
        }
    }

    /// Marks writes whose value the server acknowledged.
    pub fn resolve_delivered(&mut self) {
        let obs = self.shared.observed.borrow();
        for cl in &mut self.clients {
            for w in cl.ledger.iter_mut().filter(|w| w.fate.is_none()) {
                if w.field.is_some() && obs.delivered.contains(&w.value) {
                    w.fate = Some(Fate::Delivered);
                }
            }
        }
    }

    /// Every invariant that must hold between any two steps.
    pub fn check(&mut self) -> Result<(), String> {
        if let Some(n) = self.needless.first() {
            return Err(n.clone());
        }
        // 1. A local write is visible locally until the server has it or an event dropped it.
        for (ci, cl) in self.clients.iter().enumerate() {
            let db = cl.db();
            for w in cl.ledger.iter().filter(|w| w.fate.is_none()) {
                self.fig.checks += 1;
                let key = cl.key(&w.c, &w.handle);
                let got = now(db.get(&w.c, &key)).map_err(|e| format!("get: {e}"))?;
                let by_handle = now(db.get(&w.c, &w.handle)).map_err(|e| format!("get: {e}"))?;
                if by_handle != got {
                    return Err(format!(
                        "c{ci}: {}/{} (now {key}) is not found by its old id: {by_handle:?} vs {got:?}",
                        w.c, w.handle
                    ));
                }
                match (&w.field, got) {
                    (None, Some(r)) => {
                        return Err(format!(
                            "c{ci}: the delete of {}/{key} (step {}) was undone without an event: {r:?}",
                            w.c, w.step
                        ))
                    }
                    (Some(f), Some(r)) if r.get(f) == Some(&Value::String(w.value.clone())) => {}
                    (Some(f), r) => {
                        return Err(format!(
                            "c{ci}: lost write {}/{key}.{f} = {} (step {}), local record: {r:?}",
                            w.c, w.value, w.step
                        ))
                    }
                    (None, None) => {}
                }
            }
        }
        self.check_server()
    }

    /// No write applied twice, each client's writes of a record applied in their order, and one
    /// server record per client create.
    pub fn check_server(&mut self) -> Result<(), String> {
        self.fig.checks += 3;
        let keys = self.server.applied_keys();
        let mut seen = HashSet::new();
        for k in &keys {
            if !seen.insert(k) {
                return Err(format!("mutation {k} was applied twice on the server"));
            }
        }
        let obs = self.shared.observed.borrow();
        let mut last: HashMap<(usize, &str, &str), (u64, &str)> = HashMap::new();
        for a in &obs.applied {
            let slot = (a.client, a.c.as_str(), a.id.as_str());
            if let Some((seq, key)) = last.get(&slot) {
                if a.seq <= *seq {
                    return Err(format!(
                        "c{}: {}/{} got mutation {} after {key}: out of order",
                        a.client, a.c, a.id, a.key
                    ));
                }
            }
            last.insert(slot, (a.seq, a.key.as_str()));
        }
        for c in COLLECTIONS {
            let mut owners = HashSet::new();
            for r in self.server.records(c) {
                if let Some(Value::String(tmp)) = r.get("clientId") {
                    if tmp.starts_with("tmp-") && !owners.insert(tmp.clone()) {
                        return Err(format!("{c}: two server records were created from {tmp}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Heals the network, syncs every client until nothing is left, pulls everything, and checks
    /// that every client equals the server and that no write was lost.
    pub fn converge(&mut self) -> Result<(), String> {
        self.note("---- heal and converge".into());
        self.shared.enabled.set(false);
        for cl in &self.clients {
            cl.offline.set(false);
        }
        self.deliver_delayed(true);
        let n = self.clients.len();
        let mut drained = false;
        for _ in 0..20 {
            for ci in 0..n {
                for _ in 0..200 {
                    self.clock.set(self.clock.get() + 61_000.0);
                    self.clients[ci].next_flush_at = 0.0;
                    if self.sync_round(ci) == Some(RoundEnd::Idle) {
                        break;
                    }
                }
            }
            self.resolve_delivered();
            drained = self
                .clients
                .iter()
                .all(|cl| now(cl.db().pending_count()).expect("count") == 0);
            if drained {
                break;
            }
            // A child whose parent's create was rejected waits for the app's decision: the app
            // settles what is left in its rejected list, as an app would.
            for ci in 0..n {
                let left = now(self.clients[ci].db().rejected())
                    .expect("rejected")
                    .len();
                for _ in 0..left {
                    self.settle_rejected(ci);
                }
            }
        }
        if !drained {
            let left: Vec<_> = self
                .clients
                .iter()
                .map(|cl| now(cl.db().outbox()).expect("outbox"))
                .collect();
            return Err(format!("the outboxes never drained: {left:?}"));
        }
        for ci in 0..n {
            for c in COLLECTIONS {
                if !self.pull(ci, c) {
                    return Err(format!("c{ci}: the final pull of {c} failed"));
                }
            }
        }
        self.check()?;
        for (ci, cl) in self.clients.iter().enumerate() {
            self.fig.checks += 2;
            if now(cl.db().pending_count()).expect("count") != 0 {
                return Err(format!("c{ci}: the outbox is not empty after the pulls"));
            }
            for c in COLLECTIONS {
                let local: Vec<Value> = now(cl.db().all(c))
                    .expect("all")
                    .into_iter()
                    .map(Value::Object)
                    .collect();
                let mut server = self.server.records(c);
                if self.setup.server == ServerKind::EtagOnly {
                    // Its bodies never name a version: the records here hold none.
                    server
                        .iter_mut()
                        .for_each(crate::mem_server::strip_versions);
                }
                // The same order on both sides (the store's id order puts 9 before 10).
                let by_id = |v: &Value| match &v["id"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let (mut local, mut server) = (local, server);
                local.sort_by_key(by_id);
                server.sort_by_key(by_id);
                if local != server {
                    return Err(format!(
                        "c{ci}: {c} differs from the server\n  local:  {local:?}\n  server: {server:?}"
                    ));
                }
            }
        }
        self.check_final_ledger()
    }

    /// After convergence every write was delivered, superseded or dropped by an event, and every
    /// delete that no event undid holds on the server.
    fn check_final_ledger(&mut self) -> Result<(), String> {
        for (ci, cl) in self.clients.iter().enumerate() {
            for w in &cl.ledger {
                self.fig.checks += 1;
                let key = cl.key(&w.c, &w.handle);
                match (&w.field, w.fate) {
                    (Some(f), None) => {
                        return Err(format!(
                            "c{ci}: write {}/{key}.{f} = {} (step {}) never reached the server",
                            w.c, w.value, w.step
                        ))
                    }
                    (None, None) => {
                        let alive = self.server.records(&w.c).into_iter().any(|r| {
                            let rec: Record = r.as_object().cloned().unwrap_or_default();
                            // A create whose answer never came back is known by its clientId.
                            let unacked = key == w.handle && w.handle.starts_with("tmp-");
                            rec.get("id") == Some(&Value::String(key.clone()))
                                || (unacked
                                    && rec.get("clientId") == Some(&Value::String(key.clone())))
                        });
                        if alive {
                            return Err(format!(
                                "c{ci}: the delete of {}/{key} (step {}) never reached the server",
                                w.c, w.step
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// What a failing run leaves behind.
pub struct Failure {
    pub seed: u64,
    pub server: ServerKind,
    pub step: usize,
    pub message: String,
    pub log: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "simulation seed {} failed at step {}:",
            self.seed, self.step
        )?;
        writeln!(f, "  {}", self.message)?;
        let server = match self.server {
            ServerKind::Reference => String::new(),
            k => format!("FERRY_SIM_SERVER={k:?} "),
        };
        writeln!(
            f,
            "  replay: {server}FERRY_SIM_SEED={} cargo test --test sim one_seed -- --nocapture",
            self.seed
        )?;
        writeln!(f, "  last steps (FERRY_SIM_FULL_LOG=1 for all):")?;
        let full = std::env::var_os("FERRY_SIM_FULL_LOG").is_some();
        let from = if full {
            0
        } else {
            self.log.len().saturating_sub(60)
        };
        for l in &self.log[from..] {
            writeln!(f, "    {l}")?;
        }
        Ok(())
    }
}

/// Runs one seed for `steps` steps against the reference server, then converges.
pub fn run_seed(seed: u64, steps: usize) -> Result<Figures, Box<Failure>> {
    run_against(seed, ServerKind::Reference, steps)
}

/// Runs one seed for `steps` steps against a server of `kind`, then converges. Panics inside
/// the engine become failures.
pub fn run_against(seed: u64, kind: ServerKind, steps: usize) -> Result<Figures, Box<Failure>> {
    let setup = Setup {
        server: kind,
        ..Setup::of(seed)
    };
    let mut world = World::new(setup);
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..steps {
            world.step()?;
        }
        world.converge()
    }));
    let message = match res {
        Ok(Ok(())) => None,
        Ok(Err(m)) => Some(m),
        Err(p) => Some(format!(
            "panic: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    };
    if let Some(message) = message {
        return Err(Box::new(Failure {
            seed,
            server: kind,
            step: world.step_no,
            message,
            log: std::mem::take(&mut world.log),
        }));
    }
    let mut fig = std::mem::take(&mut world.fig);
    fig.seeds = 1;
    fig.steps = steps as u64;
    fig.faults = world.shared.faults.borrow().clone();
    let _ = T0;
    Ok(fig)
}
