//! The engine: a store's configuration, its storage and its host environment. Local operations
//! live in `local.rs`, sync in `sync/`; both are `impl Engine` blocks over the same state.

use std::cell::{Cell, RefCell};

use serde::Serialize;
use serde_json::Value;

use super::clock::Env;
use super::config::{CollectionConfig, StoreConfig};
use super::error::{Error, ErrorKind, Result};
use super::gate::Gates;
use super::record::Record;
use super::record::Row;
use super::storage::{Key, Read, Storage, Table, Txn};
use super::tx::alloc::SharedAlloc;
use super::tx::Tx;

/// What happened to a record, as subscribers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// A new record.
    Created,
    /// A record's fields changed (locally, or by a server answer or pull).
    Updated,
    /// A record is gone.
    Deleted,
}

/// One committed change of one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    /// The collection.
    pub collection: String,
    /// The record's id.
    pub id: Value,
    /// The record after the change (absent for a delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
    /// Whether the change came from the server rather than this client.
    pub remote: bool,
    /// The id the record had before this change, when the change gave it another (a create's
    /// acknowledgement: the temporary id), so a view kept by id can move the record.
    #[serde(rename = "previousId", skip_serializing_if = "Option::is_none")]
    pub previous_id: Option<String>,
}

impl Change {
    /// A change made by this client.
    pub fn local(kind: ChangeKind, collection: &str, id: Value, record: Option<Record>) -> Change {
        Change {
            kind,
            collection: collection.to_string(),
            id,
            record,
            remote: false,
            previous_id: None,
        }
    }

    /// A change that came from the server (an answer or a pull).
    pub fn remote(kind: ChangeKind, collection: &str, id: Value, record: Option<Record>) -> Change {
        Change {
            kind,
            collection: collection.to_string(),
            id,
            record,
            remote: true,
            previous_id: None,
        }
    }
}

/// The engine over storage `S` in environment `E`.
pub struct Engine<S: Storage, E: Env> {
    /// The validated configuration.
    pub config: StoreConfig,
    /// The storage backend.
    pub storage: S,
    /// Time and randomness.
    pub env: E,
    /// Why the engine is closed (`None` while it is open).
    closed: RefCell<Option<String>>,
    /// Set when the batch URL turned out not to exist: mutations then go one by one.
    pub(crate) batch_off: Cell<bool>,
    /// At most this many mutations go in one batch request: `batch_size`, halved each time a
    /// batch request timed out (a server slower than `timeoutMs` for a whole batch gets smaller
    /// ones rather than the same one for ever) and raised a little by each batch answered.
    pub(crate) batch_cap: Cell<usize>,
    /// The outbox positions this engine holds, and its clock (`tx/alloc.rs`).
    pub(crate) alloc: SharedAlloc,
    /// Collections whose server gave a record without a version (it keeps none): a write
    /// without a version is no longer read first there (`read_first`). Learnt again after a
    /// reload, at the cost of one read.
    pub(crate) versionless: RefCell<Vec<String>>,
    /// What this engine has warned of (each once).
    pub(crate) warned: RefCell<Vec<String>>,
    /// The records whose creates are under way, for writes of them to wait for (`gate.rs`).
    pub(crate) gates: Gates,
    /// Until when (ms since epoch) the server asked to be sent nothing (`Retry-After`).
    pub(crate) paused_until: Cell<Option<f64>>,
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// Opens the engine over `storage`, making sure the clock state exists.
    pub async fn open(config: StoreConfig, storage: S, env: E) -> Result<Self> {
        let config = config.validate()?;
        let batch_cap = Cell::new(config.batch_size);
        let engine = Engine {
            config,
            storage,
            env,
            closed: RefCell::new(None),
            batch_off: Cell::new(false),
            batch_cap,
            alloc: SharedAlloc::default(),
            versionless: RefCell::default(),
            warned: RefCell::default(),
            gates: Gates::default(),
            paused_until: Cell::new(None),
        };
        if engine.storage.reindexes_on_upgrade() {
            return Ok(engine);
        }
        // Rows written before an index was declared lack its key: rewrite them once. Which
        // collections need it is read in one read-only round trip; the usual open writes nothing.
        let marker = |c: &CollectionConfig| Key::Str(format!("indexes:{}", c.name));
        let want =
            |c: &CollectionConfig| serde_json::to_value(&c.indexes).expect("strings are JSON");
        let stale: Vec<&CollectionConfig> = {
            let cols: Vec<&CollectionConfig> = engine.config.collections.values().collect();
            let reads: Vec<Read> = cols
                .iter()
                .map(|c| Read::Get(Table::State, marker(c)))
                .collect();
            let tx = engine.begin_in(false, &[Table::State]).await?;
            let found = tx.t.read_many(&reads).await?;
            cols.into_iter()
                .zip(found)
                .filter(|(c, got)| got.first().map(|(_, v)| v) != Some(&want(c)))
                .map(|(c, _)| c)
                .collect()
        };
        if !stale.is_empty() {
            let tx = engine.begin(true).await?;
            for cfg in stale {
                for (k, v) in tx.t.get_all(Table::Records(&cfg.name)).await? {
                    let Some(mut row) = Row::from_stored(v)? else {
                        continue;
                    };
                    row.reindex(cfg);
                    tx.t.put(Table::Records(&cfg.name), &k, &row.to_value())?;
                }
                tx.t.put(Table::State, &marker(cfg), &want(cfg))?;
            }
            tx.commit().await?;
        }
        Ok(engine)
    }

    /// Another engine on this database (another tab) wrote: its positions may lie above those
    /// this engine holds, so the next write here reserves new ones above everything reserved,
    /// and the outbox keeps the order in which the tabs wrote (`tx/alloc.rs`).
    pub fn retire_block(&self) {
        let mut a = self.alloc.borrow_mut();
        a.end = a.next;
    }

    /// Marks the engine closed: every later call fails with a `ClosedError`.
    pub fn close(&self) {
        self.close_because("the store is closed");
    }

    /// [`Engine::close`], saying why (the database was taken away: another tab's upgrade).
    /// A round in flight sends nothing more: another tab may lead now.
    pub fn close_because(&self, why: &str) {
        let mut closed = self.closed.borrow_mut();
        if closed.is_none() {
            *closed = Some(why.to_string());
        }
    }

    /// Whether [`Engine::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    /// Until when the server asked to be sent no writes (`Retry-After` to one), if that is
    /// still ahead. Kept in memory: a page opened during the pause sends once, and learns it
    /// again from the answer.
    pub fn server_pause(&self) -> Option<f64> {
        self.paused_until
            .get()
            .filter(|until| *until > self.env.now_ms())
    }

    /// Warns (the browser's console) of `message` the first time `what` happens.
    pub(crate) fn warn_once(&self, what: String, message: impl FnOnce() -> String) {
        let mut warned = self.warned.borrow_mut();
        if !warned.contains(&what) {
            warned.push(what);
            self.env.warn(&message());
        }
    }

    /// A `ClosedError` once [`Engine::close`] was called.
    pub fn check_open(&self) -> Result<()> {
        match self.closed.borrow().as_deref() {
            Some(why) => Err(Error::new(ErrorKind::Closed, why)),
            None => Ok(()),
        }
    }

    /// The collection `name`, or an `UnknownCollectionError`.
    pub fn collection(&self, name: &str) -> Result<&CollectionConfig> {
        self.config.collection(name)
    }

    /// Opens a typed transaction, unless closed.
    pub async fn begin(&self, write: bool) -> Result<Tx<S::Txn<'_>>> {
        self.check_open()?;
        Ok(Tx::new(
            self.storage.begin(write).await?,
            self.alloc.clone(),
        ))
    }

    /// Opens a typed transaction over `scope` only, unless closed.
    pub async fn begin_in(&self, write: bool, scope: &[Table<'_>]) -> Result<Tx<S::Txn<'_>>> {
        self.check_open()?;
        Ok(Tx::new(
            self.storage.begin_in(write, scope).await?,
            self.alloc.clone(),
        ))
    }
}
