//! IndexedDB as the engine's [`Storage`].
//!
//! Layout: one object store per collection, `r:{collection}`, keyed by record id (out-of-line
//! keys), with a non-unique index `ix.{field}` (key path `ix.{field}`) per indexed field; `outbox`
//! (numeric keys) with the index `record` on `["c", "r"]`; `state` (string keys), `aliases`
//! (`[collection, tmpId]` keys), `rejected` and `conflicts` (numeric keys), and `ghosts`, empty:
//! its presence says the records stores keep ghosts (`record.rs`), laid for older data by the
//! upgrade that created it (`schema.rs`).
//!
//! Opening compares that layout with the database and, when the database lacks a store or an
//! index, reopens it one version up and creates them in `upgradeneeded`. Nothing is deleted: a
//! collection this configuration leaves out keeps its data, and an index it leaves out is kept
//! up to date (`IdbStorage::kept`). Another tab's upgrade closes this connection
//! (`versionchange`), so that upgrade is not blocked; later calls fail with a `ClosedError`.
//!
//! A transaction spans every store, or the scope asked for (`txn.rs`). Writes are queued as JSON
//! text and handed over in one call before the next read and at commit; each becomes a
//! fire-and-forget request: a failed one (quota, constraint) aborts the transaction and its error
//! becomes the error of [`Txn`](crate::core::storage::Txn)`::commit`. Values cross the boundary
//! as JSON text (`JSON.parse`, `JSON.stringify`), much cheaper than walking objects.
//! indexed_db_futures opens and upgrades the database and owns each transaction's commit and its
//! abort on drop; requests go straight to the `web_sys` handles and are awaited by a small
//! `Request` future (`txn.rs`), so a `getAll` result crosses as one string, not element by
//! element. The layout and its upgrades live in `schema.rs`; an upgrade that creates an index
//! also keys the rows already there.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::task::Waker;

use indexed_db_futures::database::Database;
use indexed_db_futures::error::{Error as IdbError, OpenDbError};
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::transaction::TransactionMode;
use indexed_db_futures::Build;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{DomException, IdbDatabase, IdbVersionChangeEvent};

use crate::core::config::StoreConfig;
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::storage::{Key, Storage, Table};

mod read;
mod request;
mod schema;
mod txn;

pub use txn::IdbTxn;

pub(super) const RECORDS_PREFIX: &str = "r:";
/// The key [`IdbStorage::fail_next_commit`] adds twice to make a commit fail.
const INJECTED_KEY: &str = "ferry:injected-failure";

/// The object store that holds `table`: the one place where tables become store names.
pub fn store_name(table: Table<'_>) -> Cow<'static, str> {
    match table {
        Table::Records(c) => Cow::Owned(format!("{RECORDS_PREFIX}{c}")),
        Table::Outbox => Cow::Borrowed("outbox"),
        Table::State => Cow::Borrowed("state"),
        Table::Aliases => Cow::Borrowed("aliases"),
        Table::Rejected => Cow::Borrowed("rejected"),
        Table::Conflicts => Cow::Borrowed("conflicts"),
    }
}

/// The engine error for a failure IndexedDB reported (a `DOMException`, usually):
/// `QuotaExceededError` is [`ErrorKind::Quota`], anything else [`ErrorKind::Storage`], with the
/// message `IndexedDB <name>: <message>`.
pub fn idb_error(e: &JsValue) -> Error {
    let (name, message) = if let Some(d) = e.dyn_ref::<DomException>() {
        (d.name(), d.message())
    } else if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        (String::from(err.name()), String::from(err.message()))
    } else {
        (
            "Error".to_string(),
            e.as_string().unwrap_or_else(|| format!("{e:?}")),
        )
    };
    if name == "QuotaExceededError" {
        // Chromium often gives no message at all: say what it means and what helps.
        let why = if message.is_empty() {
            "the storage quota for this site is full"
        } else {
            &message
        };
        return Error::new(
            ErrorKind::Quota,
            format!(
                "IndexedDB QuotaExceededError: {why}; nothing was written. Deleting records that were \
                 never sent frees space (and works even at the quota), or ask for persistent storage"
            ),
        );
    }
    Error::new(ErrorKind::Storage, format!("IndexedDB {name}: {message}"))
}

fn lib_error(e: IdbError) -> Error {
    match e {
        IdbError::DomException(d) => idb_error(d.as_ref()),
        IdbError::Unknown(js) => idb_error(js.as_ref()),
        other => Error::storage(format!("IndexedDB: {other}")),
    }
}

/// The error of opening database `name`.
fn open_error(name: &str, e: OpenDbError) -> Error {
    match e {
        OpenDbError::Base(e) => lib_error(e),
        // indexed_db_futures reports any exception `indexedDB.open()` throws as this (Ferry
        // never asks for version 0): the browser's own error says why.
        OpenDbError::VersionZero => Error::storage(format!(
            "IndexedDB cannot be used here ({}): a sandboxed frame without \
             allow-same-origin, a page not served over http(s), or a browser setting that \
             blocks this site's data",
            crate::web::js::ferry_open_refused(name)
        )),
        other => Error::storage(format!("IndexedDB: {other}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Storage

/// Wakers of tasks awaiting requests, woken by one shared `success`/`error` handler.
#[derive(Default)]
struct Waiters(RefCell<Vec<Waker>>);

impl Waiters {
    fn add(&self, w: &Waker) {
        let mut list = self.0.borrow_mut();
        if !list.iter().any(|x| x.will_wake(w)) {
            list.push(w.clone());
        }
    }
    fn wake_all(&self) {
        let list = std::mem::take(&mut *self.0.borrow_mut());
        list.into_iter().for_each(Waker::wake);
    }
}

/// An open IndexedDB database laid out for one [`StoreConfig`].
pub struct IdbStorage {
    db: Database,
    raw: IdbDatabase,
    name: String,
    stores: Vec<String>,
    /// Field indexes the database has beyond the configuration's, as `(collection, field)`.
    kept: Vec<(String, String)>,
    /// Why the connection is closed, once it is.
    closed: Rc<OnceCell<String>>,
    waiters: Rc<Waiters>,
    on_request: Closure<dyn FnMut()>,
    _on_versionchange: Closure<dyn FnMut(IdbVersionChangeEvent)>,
    _on_close: Closure<dyn FnMut()>,
    /// Told when the connection is taken away (another tab's upgrade, the browser).
    on_lost: OnLost,
    fail_next: Cell<bool>,
}

/// Who is told when the connection is taken away.
type OnLost = Rc<RefCell<Option<Box<dyn Fn()>>>>;

impl IdbStorage {
    /// Opens (or creates) the database `config.name`, upgrading its layout to `config`'s
    /// collections and indexes when it lacks some. Every store keeps its data, also the store
    /// of a collection this configuration leaves out, and every index (see [`Self::kept`]).
    pub async fn open(config: &StoreConfig) -> Result<IdbStorage> {
        let (db, stores, kept) = schema::open(config).await?;
        let name = config.name.clone();
        let raw: IdbDatabase = IdbDatabase::clone(db.as_sys());
        let closed: Rc<OnceCell<String>> = Rc::default();
        let on_lost: OnLost = Rc::default();
        let lost = |on_lost: &OnLost| {
            if let Some(f) = on_lost.borrow().as_ref() {
                f();
            }
        };
        let on_versionchange = {
            let (raw, closed, name, on_lost) =
                (raw.clone(), closed.clone(), name.clone(), on_lost.clone());
            Closure::<dyn FnMut(IdbVersionChangeEvent)>::new(move |e: IdbVersionChangeEvent| {
                raw.close();
                let why = match e.new_version() {
                    Some(v) => format!("another tab is upgrading it to version {}", v as u64),
                    None => "it is being deleted (by this page or another)".to_string(),
                };
                let _ = closed.set(format!(
                    "IndexedDB database {name:?} was closed because {why}; \
                     open the store again (or reload the page)"
                ));
                lost(&on_lost);
            })
        };
        let on_close = {
            let (closed, name, on_lost) = (closed.clone(), name.clone(), on_lost.clone());
            Closure::<dyn FnMut()>::new(move || {
                let _ = closed.set(format!(
                    "IndexedDB database {name:?} was closed by the browser (was its storage cleared?)"
                ));
                lost(&on_lost);
            })
        };
        raw.set_onversionchange(Some(on_versionchange.as_ref().unchecked_ref()));
        raw.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let waiters = Rc::new(Waiters::default());
        let on_request = {
            let waiters = waiters.clone();
            Closure::<dyn FnMut()>::new(move || waiters.wake_all())
        };
        Ok(IdbStorage {
            db,
            raw,
            name,
            stores,
            kept,
            closed,
            waiters,
            on_request,
            _on_versionchange: on_versionchange,
            _on_close: on_close,
            on_lost,
            fail_next: Cell::new(false),
        })
    }

    /// Field indexes of the declared collections that the database has and the configuration
    /// does not declare (another tab's, an earlier version's), as `(collection, field)`. The
    /// store must keep them up to date as its own: add them to the configuration's `indexes`.
    pub fn kept(&self) -> &[(String, String)] {
        &self.kept
    }

    /// Calls `f` when the connection is taken away rather than closed by
    /// [`IdbStorage::close`]: another tab's upgrade, or the browser.
    pub fn when_lost(&self, f: impl Fn() + 'static) {
        *self.on_lost.borrow_mut() = Some(Box::new(f));
    }

    /// Closes the connection; every later transaction fails with a `ClosedError`. Transactions
    /// already running finish first (IndexedDB's rule).
    pub fn close(&self) {
        let _ = self
            .closed
            .set(format!("IndexedDB database {:?} was closed", self.name));
        self.raw.close();
    }

    /// Whether the connection is closed (by [`IdbStorage::close`], another tab's upgrade, or the browser).
    pub fn is_closed(&self) -> bool {
        self.closed.get().is_some()
    }

    /// Why the connection is closed, once it is.
    pub fn closed_because(&self) -> Option<&str> {
        self.closed.get().map(String::as_str)
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes the next read-write commit fail as a real failed request does: it adds one key twice,
    /// so IndexedDB aborts the transaction with a `ConstraintError`. For all-or-nothing tests.
    pub fn fail_next_commit(&self) {
        self.fail_next.set(true);
    }
}

impl Drop for IdbStorage {
    fn drop(&mut self) {
        self.raw.set_onversionchange(None);
        self.raw.set_onclose(None);
        self.raw.close();
    }
}

impl Storage for IdbStorage {
    type Txn<'a> = IdbTxn<'a>;

    async fn begin(&self, write: bool) -> Result<IdbTxn<'_>> {
        self.begin_over(write, &self.stores)
    }

    fn reindexes_on_upgrade(&self) -> bool {
        true // `schema::apply` keys the rows in the upgrade that creates an index
    }

    async fn begin_in(&self, write: bool, scope: &[Table<'_>]) -> Result<IdbTxn<'_>> {
        let mut names: Vec<String> = scope.iter().map(|t| store_name(*t).into_owned()).collect();
        names.sort_unstable();
        names.dedup();
        self.begin_over(write, &names)
    }

    fn set_note(&self, key: &str, value: Option<&str>) {
        let key = format!("ferry:{}:{key}", self.name);
        crate::web::js::ferry_note_set(&key, value.map(str::to_string));
    }

    fn note(&self, key: &str) -> Option<String> {
        crate::web::js::ferry_note_get(&format!("ferry:{}:{key}", self.name))
    }
}

impl IdbStorage {
    fn begin_over(&self, write: bool, stores: &[String]) -> Result<IdbTxn<'_>> {
        if let Some(why) = self.closed.get() {
            return Err(Error::new(ErrorKind::Closed, why.clone()));
        }
        let mode = if write {
            TransactionMode::Readwrite
        } else {
            TransactionMode::Readonly
        };
        let tx = self
            .db
            .transaction(stores)
            .with_mode(mode)
            .build()
            .map_err(lib_error)?;
        Ok(IdbTxn::new(tx, self, write))
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and values

fn key_to_js(key: &Key) -> JsValue {
    match key {
        Key::Num(n) => JsValue::from_f64(*n as f64),
        Key::Str(s) => JsValue::from_str(s),
        Key::Pair(a, b) => js_sys::Array::of2(&JsValue::from_str(a), &JsValue::from_str(b)).into(),
    }
}

fn key_from_json(v: Value) -> Result<Key> {
    let key = match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .map(Key::Num),
        Value::String(s) => Some(Key::Str(s)),
        Value::Array(a) => match <[Value; 2]>::try_from(a) {
            Ok([Value::String(c), Value::String(r)]) => Some(Key::Pair(c, r)),
            _ => None,
        },
        _ => None,
    };
    key.ok_or_else(|| {
        Error::storage("IndexedDB: a stored key is not a number, a string or a pair of strings")
    })
}

/// Whether `v` is a valid IndexedDB key (booleans, null and objects are not).
fn is_key(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
        Value::String(_) => true,
        Value::Array(a) => a.iter().all(is_key),
        _ => false,
    }
}

fn to_js(v: &Value) -> Result<JsValue> {
    let text = serde_json::to_string(v)
        .map_err(|e| Error::storage(format!("IndexedDB: unencodable value: {e}")))?;
    js_sys::JSON::parse(&text).map_err(|e| idb_error(&e))
}

fn from_js<T: DeserializeOwned>(v: &JsValue) -> Result<T> {
    let text = js_sys::JSON::stringify(v)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| Error::storage("IndexedDB: a stored value is not JSON"))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::storage(format!(
            "IndexedDB: a stored value could not be decoded: {e}"
        ))
    })
}
