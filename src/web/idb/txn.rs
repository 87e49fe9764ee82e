//! Transactions over an [`IdbStorage`]: reads issued as IndexedDB requests and awaited by a small
//! future, writes queued as JSON text and handed over in one call before the next read and at
//! commit.

use std::borrow::Cow;
use std::cell::RefCell;

use indexed_db_futures::error::{Error as IdbError, UnexpectedDataError};
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::transaction::Transaction;
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{IdbObjectStore, IdbRequest, IdbRequestReadyState, IdbTransaction};

use super::request::{cause, is_constraint, pairs_of, records_of, wrote_each, Request};
use super::{
    from_js, idb_error, is_key, key_from_json, key_to_js, lib_error, store_name, to_js, IdbStorage,
    INJECTED_KEY,
};
use crate::core::error::{Error, Result};
use crate::core::storage::{idb_order, write_each, Checked, Key, Read, Table, Txn};
use crate::web::js::{ferry_add_all, ferry_get_all_records_with, ferry_write_all};

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

impl<'a> IdbTxn<'a> {
    /// Wraps a transaction `owner` just built.
    pub(super) fn new(tx: Transaction<'a>, owner: &'a IdbStorage, write: bool) -> Self {
        let sys = IdbTransaction::clone(tx.as_sys());
        IdbTxn {
            tx,
            sys,
            owner,
            write,
            stores: RefCell::default(),
            failed: RefCell::default(),
            queued: RefCell::default(),
        }
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

    /// Queues a write of `key` in `table`. Fails at once where IndexedDB would: a read-only
    /// transaction, a store outside the scope.
    fn queue(&self, table: Table<'_>, key: &Key, write: Write<'_>) -> Result<()> {
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
        let key_json = |q: &mut Vec<u8>, key: &Key| {
            q.push(b',');
            match key {
                Key::Num(n) => q.extend_from_slice(n.to_string().as_bytes()),
                Key::Str(k) => json(q, k),
                Key::Pair(a, b) => {
                    q.push(b'[');
                    json(q, a);
                    q.push(b',');
                    json(q, b);
                    q.push(b']');
                }
            }
        };
        key_json(&mut q, key);
        if let Write::DeleteTo(hi) = write {
            key_json(&mut q, hi);
            q.extend_from_slice(b",0");
        }
        if let Write::Put(encode) | Write::Add(encode) = write {
            q.push(b',');
            if let Err(e) = encode(&mut q) {
                q.truncate(start); // the whole operation goes, not only its value
                drop(q);
                return Err(
                    self.write_failed(Error::storage(format!("IndexedDB: unencodable value: {e}")))
                );
            }
        }
        if let Write::Add(_) = write {
            q.extend_from_slice(b",1");
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

    /// Issues `adds` now, each failing alone where its key is taken (`ferry_add_all`).
    fn add_all(&self, adds: &[(Table<'_>, Key, Value)]) -> Result<Vec<Request<'_>>> {
        if adds.is_empty() {
            return Ok(Vec::new());
        }
        for (table, key, v) in adds {
            self.put(*table, key, v)?; // encoded like a put; sent below as adds
        }
        let mut q = std::mem::take(&mut *self.queued.borrow_mut());
        q.push(b']');
        let text = String::from_utf8(q).expect("serde_json writes UTF-8");
        let wake = self.owner.on_request.as_ref().unchecked_ref();
        let reqs = ferry_add_all(&self.sys, &text, wake)
            .map_err(|e| self.write_failed(cause(&self.sys, &e)))?;
        Ok(reqs
            .iter()
            .map(|r| Request {
                req: r.unchecked_into(),
                waiters: &self.owner.waiters,
                tx: &self.sys,
                done: false,
            })
            .collect())
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

    /// The requests of `reads`, issued now, after the writes queued before them.
    fn issue_reads(&self, reads: &[Read<'_>]) -> Result<Vec<Issued<'_>>> {
        self.flush()?;
        reads.iter().map(|r| self.issue(r)).collect()
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
                self.issue_all(*table, Some(index), &query, None)?
            }
            Read::FirstKey(table, index, value) => {
                if !is_key(value) {
                    return Ok(Issued::Nothing);
                }
                let query = to_js(value)?;
                let req = self.with_store(*table, |s| s.index(index)?.get_key(&query))?;
                Issued::FirstKey(self.request(req))
            }
            Read::All(table) => self.issue_all(*table, None, &JsValue::UNDEFINED, None)?,
            Read::Range {
                table,
                index,
                lo,
                hi,
                limit,
            } => {
                if idb_order(lo, hi) == std::cmp::Ordering::Greater || *limit == 0 {
                    return Ok(Issued::Nothing); // an empty range (IndexedDB would throw)
                }
                let range = web_sys::IdbKeyRange::bound(&key_to_js(lo), &key_to_js(hi))
                    .map_err(|e| idb_error(&e))?;
                let count = u32::try_from(*limit).unwrap_or(u32::MAX);
                self.issue_all(*table, *index, &range.into(), Some(count))?
            }
        })
    }

    /// The keys and values of `table` (or of its index `index`) under `query` (everything when
    /// undefined), the first `count` of them when given: one `getAllRecords` request where the
    /// browser has it, else `getAllKeys` and `getAll`.
    fn issue_all(
        &self,
        table: Table<'_>,
        index: Option<&str>,
        query: &JsValue,
        count: Option<u32>,
    ) -> Result<Issued<'_>> {
        let (records, pair) = self.with_store(table, |s| {
            let source: JsValue = match index {
                Some(ix) => s.index(ix)?.into(),
                None => s.clone().into(),
            };
            let options = js_sys::Object::new();
            if !query.is_undefined() {
                js_sys::Reflect::set(&options, &"query".into(), query)?;
            }
            if let Some(n) = count {
                js_sys::Reflect::set(&options, &"count".into(), &n.into())?;
            }
            if let Some(req) = ferry_get_all_records_with(&source, &options)? {
                return Ok((Some(req), None));
            }
            // An undefined query is no query: everything.
            let pair = match (index, count) {
                (Some(ix), Some(n)) => {
                    let ix = s.index(ix)?;
                    (
                        ix.get_all_keys_with_key_and_limit(query, n)?,
                        ix.get_all_with_key_and_limit(query, n)?,
                    )
                }
                (Some(ix), None) => {
                    let ix = s.index(ix)?;
                    (
                        ix.get_all_keys_with_key(query)?,
                        ix.get_all_with_key(query)?,
                    )
                }
                (None, Some(n)) => (
                    s.get_all_keys_with_key_and_limit(query, n)?,
                    s.get_all_with_key_and_limit(query, n)?,
                ),
                (None, None) => (s.get_all_keys_with_key(query)?, s.get_all_with_key(query)?),
            };
            Ok((None, Some(pair)))
        })?;
        Ok(match (records, pair) {
            (Some(r), _) => Issued::Records(self.request(r)),
            (None, Some((k, v))) => Issued::Pairs(self.request(k), self.request(v)),
            (None, None) => Issued::Nothing,
        })
    }

    /// The answers of issued reads, in order.
    async fn answers(&self, issued: Vec<Issued<'_>>) -> Result<Vec<Vec<(Key, Value)>>> {
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

    async fn all_of(&self, issued: Issued<'_>) -> Result<Vec<(Key, Value)>> {
        match issued {
            Issued::Records(req) => records_of(&req.await?),
            Issued::Pairs(k, v) => pairs_of(k, v).await,
            Issued::FirstKey(req) => {
                let k = req.await?;
                if k.is_undefined() {
                    return Ok(Vec::new());
                }
                Ok(vec![(key_from_json(from_js(&k)?)?, Value::Null)])
            }
            Issued::One(..) | Issued::Nothing => Ok(Vec::new()),
        }
    }
}

/// Writes a value's JSON text at the end of the queue.
type Encode<'v> = &'v dyn Fn(&mut Vec<u8>) -> serde_json::Result<()>;

/// One queued write.
#[derive(Clone, Copy)]
enum Write<'v> {
    /// A put, its value written straight into the queue (no `Value` built first).
    Put(Encode<'v>),
    /// An add: where its key is taken, its error aborts the transaction ([`Txn::add_new`]).
    Add(Encode<'v>),
    Delete,
    /// A delete of every key from the queued key to this one.
    DeleteTo(&'v Key),
}

/// The requests of one read, in flight.
enum Issued<'t> {
    One(Key, Request<'t>),
    Pairs(Request<'t>, Request<'t>),
    Records(Request<'t>),
    /// A `getKey` on an index: the primary key of the first hit.
    FirstKey(Request<'t>),
    Nothing,
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
        let issued = self.issue_all(table, None, &JsValue::UNDEFINED, None)?;
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
        let issued = self.issue_all(table, Some(index), &query, None)?;
        self.all_of(issued).await
    }

    async fn read_many(&self, reads: &[Read<'_>]) -> Result<Vec<Vec<(Key, Value)>>> {
        // Every request first, then the answers: IndexedDB runs them back to back.
        let issued = self.issue_reads(reads)?;
        self.answers(issued).await
    }

    async fn read_then_write(
        &self,
        reads: &[Read<'_>],
        adds: &[(Table<'_>, Key, Value)],
        writes: &[(Table<'_>, Key, Option<Value>)],
    ) -> Result<(Vec<Vec<(Key, Value)>>, Vec<bool>)> {
        let issued = self.issue_reads(reads)?;
        // Issued after the reads, so the reads do not see them (requests run in order).
        let added = self.add_all(adds)?;
        write_each(self, writes)?;
        self.flush()?;
        let answers = self.answers(issued).await?;
        Ok((answers, wrote_each(added).await?))
    }

    async fn add_unless_found(
        self,
        reads: &[Read<'_>],
        adds: &[(Table<'_>, Key, Value)],
    ) -> Result<Checked<Self>> {
        let issued = self.issue_reads(reads)?;
        let added = self.add_all(adds)?;
        let answers = self.answers(issued).await?;
        // An add answered already was answered after every read: a failure of it was kept from
        // aborting the transaction, so the caller gets it back open.
        let failed = |r: &IdbRequest| {
            r.ready_state() == IdbRequestReadyState::Done && !matches!(r.error(), Ok(None))
        };
        if answers.iter().all(|a| a.is_empty()) && !added.iter().any(|r| failed(&r.req)) {
            let sent: Vec<IdbRequest> = added.iter().map(|r| r.req.clone()).collect();
            // Dropping the awaits takes away the adds' error handlers, which kept a taken key
            // from aborting the transaction: from here one does abort it, commit and all.
            // (Chromium, tried, aborted a committing transaction on a failed add even with the
            // failure prevented; without handlers, every browser must.)
            drop(added);
            return match self.commit().await {
                Ok(()) => Ok(Checked::Committed),
                Err(_) if sent.iter().any(is_constraint) => {
                    Ok(Checked::Taken(sent.iter().map(is_constraint).collect()))
                }
                Err(e) => Err(e),
            };
        }
        let wrote = wrote_each(added).await?;
        Ok(Checked::Open(self, answers, wrote))
    }

    async fn get_range(
        &self,
        table: Table<'_>,
        index: Option<&str>,
        lo: &Key,
        hi: &Key,
        limit: usize,
    ) -> Result<Vec<(Key, Value)>> {
        self.flush()?;
        let read = Read::Range {
            table,
            index,
            lo: lo.clone(),
            hi: hi.clone(),
            limit,
        };
        let issued = self.issue(&read)?;
        self.all_of(issued).await
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
        let issued = self.issue_all(table, None, &JsValue::UNDEFINED, Some(count))?;
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
        self.queue(table, key, Write::Put(&|q| serde_json::to_writer(q, value)))
    }

    fn put_encoded<V: serde::Serialize>(
        &self,
        table: Table<'_>,
        key: &Key,
        value: &V,
    ) -> Result<()> {
        self.queue(table, key, Write::Put(&|q| serde_json::to_writer(q, value)))
    }

    fn delete(&self, table: Table<'_>, key: &Key) -> Result<()> {
        self.queue(table, key, Write::Delete)
    }

    /// Queued like puts, so they go with the commit (no crossing of their own) and are not
    /// awaited: an add that fails is not handled, so its error aborts the transaction.
    async fn add_new(&self, adds: &[(Table<'_>, Key, Value)]) -> Result<()> {
        for (table, key, value) in adds {
            self.queue(
                *table,
                key,
                Write::Add(&|q| serde_json::to_writer(q, value)),
            )?;
        }
        Ok(())
    }

    fn delete_range(&self, table: Table<'_>, lo: &Key, hi: &Key) -> Result<()> {
        if idb_order(lo, hi) == std::cmp::Ordering::Greater {
            return Ok(()); // an empty range (IndexedDB would throw)
        }
        self.queue(table, lo, Write::DeleteTo(hi))
    }

    async fn commit(self) -> Result<()> {
        if self.write {
            self.flush()?; // fails with an earlier write's error too; dropped here: aborted
        }
        let IdbTxn {
            tx,
            sys,
            owner,
            write,
            failed,
            ..
        } = self;
        if let Some(e) = failed.into_inner() {
            return Err(e); // `tx` drops here: aborted
        }
        if !write {
            return Ok(()); // nothing to make durable; finishing it early changes nothing
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
