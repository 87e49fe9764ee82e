//! IndexedDB as the engine's [`Storage`].
//!
//! Layout: one object store per collection, `r:{collection}`, keyed by record id (out-of-line
//! keys), with a non-unique index `ix.{field}` (key path `ix.{field}`) per indexed field; `outbox`
//! (numeric keys) with the index `record` on `["c", "r"]`; `state` (string keys), `aliases`
//! (`[collection, tmpId]` keys), `rejected` and `conflicts` (numeric keys).
//!
//! Opening compares that layout with the database and, when they differ, reopens it one version
//! up and creates or deletes stores and indexes in `upgradeneeded`; the stores that stay keep
//! their data. Another tab's upgrade closes this connection (`versionchange`), so that upgrade is
//! not blocked; later calls fail with a `ClosedError`.
//!
//! A transaction spans every store, or the scope asked for. Writes are queued as JSON text and
//! handed over in one call before the next read and at commit; each becomes a fire-and-forget
//! request: a failed one (quota, constraint) aborts the transaction and its error becomes the
//! error of [`Txn::commit`]. Values cross the boundary as JSON text (`JSON.parse`,
//! `JSON.stringify`), much cheaper than walking objects. indexed_db_futures opens and upgrades the
//! database and owns each transaction's commit and its abort on drop; requests go straight to the
//! `web_sys` handles and are awaited by the small `Request` future below, so a `getAll` result
//! crosses as one string, not element by element. The layout and its upgrades live in
//! `schema.rs`; an upgrade that creates an index also keys the rows already there.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use indexed_db_futures::database::Database;
use indexed_db_futures::error::{Error as IdbError, OpenDbError, UnexpectedDataError};
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::transaction::{Transaction, TransactionMode};
use indexed_db_futures::Build;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    DomException, IdbDatabase, IdbObjectStore, IdbRequest, IdbRequestReadyState, IdbTransaction,
    IdbVersionChangeEvent,
};

use crate::core::config::StoreConfig;
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::storage::{Key, Read, Storage, Table, Txn};
use crate::web::js::{ferry_get_all_records_with, ferry_record_pairs, ferry_write_all};

mod read;
mod schema;

const RECORDS_PREFIX: &str = "r:";
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

fn open_error(e: OpenDbError) -> Error {
    match e {
        OpenDbError::Base(e) => lib_error(e),
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
    /// Why the connection is closed, once it is.
    closed: Rc<OnceCell<String>>,
    waiters: Rc<Waiters>,
    on_request: Closure<dyn FnMut()>,
    _on_versionchange: Closure<dyn FnMut(IdbVersionChangeEvent)>,
    _on_close: Closure<dyn FnMut()>,
    fail_next: Cell<bool>,
}

impl IdbStorage {
    /// Opens (or creates) the database `config.name`, upgrading its layout to `config`'s
    /// collections and indexes when they differ. Data of stores that stay is kept; the store of a
    /// collection no longer configured is deleted.
    pub async fn open(config: &StoreConfig) -> Result<IdbStorage> {
        let (db, stores) = schema::open(config).await?;
        let name = config.name.clone();
        let raw: IdbDatabase = IdbDatabase::clone(db.as_sys());
        let closed: Rc<OnceCell<String>> = Rc::default();
        let on_versionchange = {
            let (raw, closed, name) = (raw.clone(), closed.clone(), name.clone());
            Closure::<dyn FnMut(IdbVersionChangeEvent)>::new(move |e: IdbVersionChangeEvent| {
                raw.close();
                let why = match e.new_version() {
                    Some(v) => format!("another tab is upgrading it to version {}", v as u64),
                    None => "another tab is deleting it".to_string(),
                };
                let _ = closed.set(format!(
                    "IndexedDB database {name:?} was closed because {why}; \
                     open the store again (or reload the page)"
                ));
            })
        };
        let on_close = {
            let (closed, name) = (closed.clone(), name.clone());
            Closure::<dyn FnMut()>::new(move || {
                let _ = closed.set(format!(
                    "IndexedDB database {name:?} was closed by the browser (was its storage cleared?)"
                ));
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
            closed,
            waiters,
            on_request,
            _on_versionchange: on_versionchange,
            _on_close: on_close,
            fail_next: Cell::new(false),
        })
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
        let sys = IdbTransaction::clone(tx.as_sys());
        Ok(IdbTxn {
            tx,
            sys,
            owner: self,
            write,
            stores: RefCell::default(),
            failed: RefCell::default(),
            queued: RefCell::default(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// A transaction over every store of an [`IdbStorage`]; dropping it uncommitted aborts it.
pub struct IdbTxn<'a> {
    tx: Transaction<'a>,
    sys: IdbTransaction,
    owner: &'a IdbStorage,
    write: bool,
    /// Object store handles, fetched once per transaction.
    stores: RefCell<Vec<(Cow<'static, str>, IdbObjectStore)>>,
    /// The first write that failed at once: the commit fails with it.
    failed: RefCell<Option<Error>>,
    /// Writes not handed to IndexedDB yet: the JSON text of `[[store, key, value], [store, key],
    /// ...` (a pair is a delete). They go over in one call, one `JSON.parse` and a loop of
    /// requests ([`IdbTxn::flush`]), before the next read and at commit, rather than one boundary
    /// crossing and one parse per value.
    queued: RefCell<Vec<u8>>,
}

/// The error of a failed call or request: the transaction's own error when one aborted it (the
/// cause, such as the `ConstraintError` behind a later `AbortError`), else `e`'s.
fn cause(tx: &IdbTransaction, e: &JsValue) -> Error {
    match tx.error() {
        Some(cause) => idb_error(&cause),
        None => idb_error(e),
    }
}

impl IdbTxn<'_> {
    /// Runs `f` on the object store of `table`.
    fn with_store<T>(
        &self,
        table: Table<'_>,
        f: impl FnOnce(&IdbObjectStore) -> std::result::Result<T, JsValue>,
    ) -> Result<T> {
        let name = store_name(table);
        let mut stores = self.stores.borrow_mut();
        let i = match stores.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                let store = self
                    .sys
                    .object_store(&name)
                    .map_err(|e| cause(&self.sys, &e))?;
                stores.push((name, store));
                stores.len() - 1
            }
        };
        f(&stores[i].1).map_err(|e| cause(&self.sys, &e))
    }

    fn request(&self, req: IdbRequest) -> Request<'_> {
        let handler = self.owner.on_request.as_ref().unchecked_ref();
        req.set_onsuccess(Some(handler));
        req.set_onerror(Some(handler));
        Request {
            req,
            waiters: &self.owner.waiters,
            tx: &self.sys,
            done: false,
        }
    }

    /// Queues a put (`value` is `Some`) or a delete of `key` in `table`. Fails at once where
    /// IndexedDB would: a read-only transaction, a store outside the scope.
    fn queue(&self, table: Table<'_>, key: &Key, value: Option<&Value>) -> Result<()> {
        self.check()?;
        if !self.write {
            return Err(self.write_failed(Error::storage(
                "IndexedDB ReadOnlyError: the transaction is read-only",
            )));
        }
        self.with_store(table, |_| Ok(()))
            .map_err(|e| self.write_failed(e))?;
        let mut q = self.queued.borrow_mut();
        let start = q.len();
        let sep = if q.is_empty() { b'[' } else { b',' };
        q.push(sep);
        q.push(b'[');
        let name = store_name(table);
        let json =
            |q: &mut Vec<u8>, v: &str| serde_json::to_writer(q, v).expect("strings are JSON");
        json(&mut q, &name);
        q.push(b',');
        match key {
            Key::Num(n) => q.extend_from_slice(n.to_string().as_bytes()),
            Key::Str(k) => json(&mut q, k),
            Key::Pair(a, b) => {
                q.push(b'[');
                json(&mut q, a);
                q.push(b',');
                json(&mut q, b);
                q.push(b']');
            }
        }
        if let Some(v) = value {
            q.push(b',');
            if let Err(e) = serde_json::to_writer(&mut *q, v) {
                q.truncate(start); // the whole operation goes, not only its value
                drop(q);
                return Err(
                    self.write_failed(Error::storage(format!("IndexedDB: unencodable value: {e}")))
                );
            }
        }
        q.push(b']');
        Ok(())
    }

    /// Hands the queued writes to IndexedDB (before a read, which must see them, and at commit).
    fn flush(&self) -> Result<()> {
        self.check()?; // nothing is issued into a doomed transaction
        let mut q = std::mem::take(&mut *self.queued.borrow_mut());
        if q.is_empty() {
            return Ok(());
        }
        q.push(b']');
        let text = String::from_utf8(q).expect("serde_json writes UTF-8");
        ferry_write_all(&self.sys, &text).map_err(|e| self.write_failed(cause(&self.sys, &e)))
    }

    /// Fails if a write already failed, so nothing is issued into a doomed transaction.
    fn check(&self) -> Result<()> {
        match &*self.failed.borrow() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn write_failed(&self, e: Error) -> Error {
        self.failed.borrow_mut().get_or_insert_with(|| e.clone());
        e
    }

    /// The requests of one [`Read`], issued now.
    fn issue(&self, read: &Read<'_>) -> Result<Issued<'_>> {
        Ok(match read {
            Read::Get(table, key) => {
                let js = key_to_js(key);
                let req = self.with_store(*table, |s| s.get(&js))?;
                Issued::One(key.clone(), self.request(req))
            }
            Read::Index(table, index, value) => {
                if !is_key(value) {
                    return Ok(Issued::Nothing);
                }
                let query = to_js(value)?;
                self.issue_all(*table, Some(index), &query)?
            }
            Read::All(table) => self.issue_all(*table, None, &JsValue::UNDEFINED)?,
        })
    }

    /// The keys and values of `table` (or of its index `index`) under `query` (everything when
    /// undefined): one `getAllRecords` request where the browser has it, else two.
    fn issue_all(
        &self,
        table: Table<'_>,
        index: Option<&str>,
        query: &JsValue,
    ) -> Result<Issued<'_>> {
        let (records, keys, values) = self.with_store(table, |s| {
            let source: JsValue = match index {
                Some(ix) => s.index(ix)?.into(),
                None => s.clone().into(),
            };
            let options = js_sys::Object::new();
            if !query.is_undefined() {
                js_sys::Reflect::set(&options, &"query".into(), query)?;
            }
            if let Some(req) = ferry_get_all_records_with(&source, &options)? {
                return Ok((Some(req), None, None));
            }
            let (k, v) = match (index, query.is_undefined()) {
                (Some(ix), _) => {
                    let ix = s.index(ix)?;
                    (
                        ix.get_all_keys_with_key(query)?,
                        ix.get_all_with_key(query)?,
                    )
                }
                (None, true) => (s.get_all_keys()?, s.get_all()?),
                (None, false) => (s.get_all_keys_with_key(query)?, s.get_all_with_key(query)?),
            };
            Ok((None, Some(k), Some(v)))
        })?;
        Ok(match (records, keys, values) {
            (Some(r), _, _) => Issued::Records(self.request(r)),
            (None, Some(k), Some(v)) => Issued::Pairs(self.request(k), self.request(v)),
            _ => Issued::Nothing,
        })
    }

    async fn all_of(&self, issued: Issued<'_>) -> Result<Vec<(Key, Value)>> {
        match issued {
            Issued::Records(req) => records_of(&req.await?),
            Issued::Pairs(k, v) => pairs_of(k, v).await,
            Issued::One(..) | Issued::Nothing => Ok(Vec::new()),
        }
    }
}

/// The requests of one read, in flight.
enum Issued<'t> {
    One(Key, Request<'t>),
    Pairs(Request<'t>, Request<'t>),
    Records(Request<'t>),
    Nothing,
}

/// `getAllRecords`' answer as pairs, decoded in one crossing.
fn records_of(records: &JsValue) -> Result<Vec<(Key, Value)>> {
    let text = ferry_record_pairs(records)
        .map_err(|_| Error::storage("IndexedDB: a stored value is not JSON"))?;
    // Two arrays rather than pairs: `Vec<Value>` is the one shape the decoder already knows.
    let halves: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
        Error::storage(format!(
            "IndexedDB: a stored value could not be decoded: {e}"
        ))
    })?;
    match <[Value; 2]>::try_from(halves) {
        Ok([Value::Array(keys), Value::Array(values)]) if keys.len() == values.len() => keys
            .into_iter()
            .zip(values)
            .map(|(k, v)| Ok((key_from_json(k)?, v)))
            .collect(),
        _ => Err(Error::storage(
            "IndexedDB: getAllRecords answered something else",
        )),
    }
}

async fn pairs_of(keys: Request<'_>, values: Request<'_>) -> Result<Vec<(Key, Value)>> {
    let keys: Vec<Value> = from_js(&keys.await?)?;
    let values: Vec<Value> = from_js(&values.await?)?;
    if keys.len() != values.len() {
        return Err(Error::storage("IndexedDB: getAllKeys and getAll disagree"));
    }
    keys.into_iter()
        .zip(values)
        .map(|(k, v)| Ok((key_from_json(k)?, v)))
        .collect()
}

impl Txn for IdbTxn<'_> {
    async fn get(&self, table: Table<'_>, key: &Key) -> Result<Option<Value>> {
        self.flush()?;
        let key = key_to_js(key);
        let req = self.with_store(table, |s| s.get(&key))?;
        let v = self.request(req).await?;
        if v.is_undefined() {
            Ok(None)
        } else {
            from_js(&v).map(Some)
        }
    }

    async fn get_all(&self, table: Table<'_>) -> Result<Vec<(Key, Value)>> {
        self.flush()?;
        let issued = self.issue_all(table, None, &JsValue::UNDEFINED)?;
        self.all_of(issued).await
    }

    async fn get_by_index(
        &self,
        table: Table<'_>,
        index: &str,
        value: &Value,
    ) -> Result<Vec<(Key, Value)>> {
        self.flush()?;
        if !is_key(value) {
            return Ok(Vec::new()); // no row is indexed under what is not a valid key
        }
        let query = to_js(value)?;
        let issued = self.issue_all(table, Some(index), &query)?;
        self.all_of(issued).await
    }

    async fn read_many(&self, reads: &[Read<'_>]) -> Result<Vec<Vec<(Key, Value)>>> {
        self.flush()?;
        // Every request first, then the answers: IndexedDB runs them back to back.
        let issued = reads
            .iter()
            .map(|r| self.issue(r))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(issued.len());
        for i in issued {
            out.push(match i {
                Issued::One(key, req) => {
                    let v = req.await?;
                    if v.is_undefined() {
                        Vec::new()
                    } else {
                        vec![(key, from_js(&v)?)]
                    }
                }
                other => self.all_of(other).await?,
            });
        }
        Ok(out)
    }

    async fn count(&self, table: Table<'_>) -> Result<u64> {
        self.flush()?;
        let req = self.with_store(table, |s| s.count())?;
        let n = self.request(req).await?;
        n.as_f64()
            .map(|n| n as u64)
            .ok_or_else(|| Error::storage("IndexedDB: count returned a non-number"))
    }

    async fn get_first(&self, table: Table<'_>, n: usize) -> Result<Vec<(Key, Value)>> {
        self.flush()?;
        if n == 0 {
            return Ok(Vec::new()); // IndexedDB reads a count of 0 as "no limit"
        }
        let count = u32::try_from(n).unwrap_or(u32::MAX);
        let issued = self.with_store(table, |s| {
            let options = js_sys::Object::new();
            js_sys::Reflect::set(&options, &"count".into(), &count.into())?;
            if let Some(req) = ferry_get_all_records_with(s, &options)? {
                return Ok(Issued::Records(self.request(req)));
            }
            let any = JsValue::UNDEFINED;
            Ok(Issued::Pairs(
                self.request(s.get_all_keys_with_key_and_limit(&any, count)?),
                self.request(s.get_all_with_key_and_limit(&any, count)?),
            ))
        })?;
        self.all_of(issued).await
    }

    async fn count_many(&self, tables: &[Table<'_>]) -> Result<Vec<u64>> {
        self.flush()?;
        let issued = tables
            .iter()
            .map(|t| Ok(self.request(self.with_store(*t, |s| s.count())?)))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(issued.len());
        for req in issued {
            let n = req.await?;
            out.push(
                n.as_f64()
                    .map(|n| n as u64)
                    .ok_or_else(|| Error::storage("IndexedDB: count returned a non-number"))?,
            );
        }
        Ok(out)
    }

    fn put(&self, table: Table<'_>, key: &Key, value: &Value) -> Result<()> {
        self.queue(table, key, Some(value))
    }

    fn delete(&self, table: Table<'_>, key: &Key) -> Result<()> {
        self.queue(table, key, None)
    }

    async fn commit(self) -> Result<()> {
        let IdbTxn {
            tx,
            sys,
            owner,
            write,
            failed,
            queued,
            ..
        } = self;
        if let Some(e) = failed.into_inner() {
            return Err(e); // `tx` drops here: aborted
        }
        if !write {
            return Ok(()); // nothing to make durable; finishing it early changes nothing
        }
        let queued = queued.into_inner();
        if !queued.is_empty() {
            let mut q = queued;
            q.push(b']');
            let text = String::from_utf8(q).expect("serde_json writes UTF-8");
            ferry_write_all(&sys, &text).map_err(|e| cause(&sys, &e))?; // `tx` drops: aborted
        }
        if owner.fail_next.get() {
            // Taken only by a transaction that can carry it out (its scope has `state`).
            if let Ok(state) = sys.object_store(&store_name(Table::State)) {
                owner.fail_next.set(false);
                let key = JsValue::from_str(INJECTED_KEY);
                let _ = state.add_with_key(&JsValue::NULL, &key);
                let _ = state.add_with_key(&JsValue::NULL, &key);
            }
        }
        tx.commit().await.map_err(|e| match (sys.error(), e) {
            (Some(cause), _) => idb_error(&cause),
            (None, IdbError::MissingData(UnexpectedDataError::TransactionAborted)) => {
                Error::storage("IndexedDB AbortError: the transaction was aborted")
            }
            (None, e) => lib_error(e),
        })
    }
}

/// One request awaited: ready once IndexedDB fired `success` or `error` on it.
struct Request<'t> {
    req: IdbRequest,
    waiters: &'t Waiters,
    tx: &'t IdbTransaction,
    done: bool,
}

impl Future for Request<'_> {
    type Output = Result<JsValue>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.req.ready_state() != IdbRequestReadyState::Done {
            self.waiters.add(cx.waker());
            return Poll::Pending;
        }
        self.done = true;
        Poll::Ready(match self.req.error() {
            Ok(None) => self.req.result().map_err(|e| idb_error(&e)),
            Ok(Some(e)) => Err(cause(self.tx, &e)),
            Err(e) => Err(cause(self.tx, &e)),
        })
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.req.set_onsuccess(None);
            self.req.set_onerror(None);
        }
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
