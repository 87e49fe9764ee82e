//! An in-memory [`Storage`], for native tests and the simulator. Transactions work on a copy of
//! the tables and swap it in on commit, so a dropped transaction leaves nothing behind, as
//! IndexedDB's do. Crash tests clone the storage to keep "disk" while dropping everything else.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;

use super::error::{Error, ErrorKind, Result};
use super::storage::{idb_order, index_value, Key, Storage, Table, Txn};

type Tables = BTreeMap<String, BTreeMap<Key, Value>>;

fn table_name(t: Table<'_>) -> String {
    match t {
        Table::Records(c) => format!("r:{c}"),
        other => format!("{other:?}"),
    }
}

/// Shared in-memory tables. Clones share the same data (like two handles on one database).
#[derive(Clone, Default)]
pub struct MemoryStorage {
    tables: Rc<RefCell<Tables>>,
    /// When set, the next commit fails with this error kind (to test all-or-nothing writes).
    fail_next_commit: Rc<RefCell<Option<ErrorKind>>>,
    /// [`Storage::set_note`]'s notes, shared by every clone (the tabs of one browser).
    notes: Rc<RefCell<std::collections::HashMap<String, String>>>,
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }
    /// Makes the next commit fail with `kind`, as a full disk or an abort would.
    pub fn fail_next_commit(&self, kind: ErrorKind) {
        *self.fail_next_commit.borrow_mut() = Some(kind);
    }
    /// A deep copy that no longer shares data: a snapshot of the "disk".
    pub fn snapshot(&self) -> MemoryStorage {
        MemoryStorage {
            tables: Rc::new(RefCell::new(self.tables.borrow().clone())),
            fail_next_commit: Rc::default(),
            notes: Rc::new(RefCell::new(self.notes.borrow().clone())),
        }
    }
}

/// A transaction over [`MemoryStorage`].
pub struct MemoryTxn<'a> {
    owner: &'a MemoryStorage,
    work: RefCell<Tables>,
    write: bool,
    /// The tables it may touch (all when `None`), enforced as IndexedDB does.
    scope: Option<Vec<String>>,
    /// The first write that failed: as in IndexedDB, the transaction is doomed and its commit
    /// fails with it.
    failed: RefCell<Option<Error>>,
}

impl MemoryTxn<'_> {
    fn read<T>(
        &self,
        t: Table<'_>,
        f: impl FnOnce(Option<&BTreeMap<Key, Value>>) -> T,
    ) -> Result<T> {
        let name = self.in_scope(t)?;
        let work = self.work.borrow();
        Ok(f(work.get(&name)))
    }
    fn in_scope(&self, t: Table<'_>) -> Result<String> {
        let name = table_name(t);
        match &self.scope {
            Some(scope) if !scope.contains(&name) => Err(Error::storage(format!(
                "{name} is not in this transaction's scope"
            ))),
            _ => Ok(name),
        }
    }
    fn check_write(&self, t: Table<'_>) -> Result<String> {
        if let Some(e) = &*self.failed.borrow() {
            return Err(e.clone());
        }
        let checked = if self.write {
            self.in_scope(t)
        } else {
            Err(Error::storage("write in a read-only transaction"))
        };
        if let Err(e) = &checked {
            *self.failed.borrow_mut() = Some(e.clone());
        }
        checked
    }
}

impl Txn for MemoryTxn<'_> {
    async fn get(&self, table: Table<'_>, key: &Key) -> Result<Option<Value>> {
        self.read(table, |t| t.and_then(|t| t.get(key).cloned()))
    }
    async fn get_all(&self, table: Table<'_>) -> Result<Vec<(Key, Value)>> {
        self.read(table, |t| {
            t.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        })
    }
    async fn get_by_index(
        &self,
        table: Table<'_>,
        index: &str,
        value: &Value,
    ) -> Result<Vec<(Key, Value)>> {
        self.read(table, |t| {
            t.map(|t| {
                t.iter()
                    .filter(|(_, v)| index_value(index, v).as_ref() == Some(value))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
        })
    }
    async fn count(&self, table: Table<'_>) -> Result<u64> {
        self.read(table, |t| t.map_or(0, |t| t.len() as u64))
    }
    fn put(&self, table: Table<'_>, key: &Key, value: &Value) -> Result<()> {
        let name = self.check_write(table)?;
        self.work
            .borrow_mut()
            .entry(name)
            .or_default()
            .insert(key.clone(), value.clone());
        Ok(())
    }
    fn delete(&self, table: Table<'_>, key: &Key) -> Result<()> {
        let name = self.check_write(table)?;
        if let Some(t) = self.work.borrow_mut().get_mut(&name) {
            t.remove(key);
        }
        Ok(())
    }
    fn delete_range(&self, table: Table<'_>, lo: &Key, hi: &Key) -> Result<()> {
        use std::cmp::Ordering::{Greater, Less};
        let name = self.check_write(table)?;
        if let Some(t) = self.work.borrow_mut().get_mut(&name) {
            t.retain(|k, _| idb_order(k, lo) == Less || idb_order(k, hi) == Greater);
        }
        Ok(())
    }
    async fn commit(self) -> Result<()> {
        if let Some(e) = self.failed.into_inner() {
            return Err(e);
        }
        if let Some(kind) = self.owner.fail_next_commit.borrow_mut().take() {
            return Err(Error::new(kind, "commit failed (injected)"));
        }
        if self.write {
            *self.owner.tables.borrow_mut() = self.work.into_inner();
        }
        Ok(())
    }
}

impl Storage for MemoryStorage {
    type Txn<'a> = MemoryTxn<'a>;
    async fn begin(&self, write: bool) -> Result<MemoryTxn<'_>> {
        // A copy per transaction is fine at test sizes and gives real rollback semantics.
        Ok(MemoryTxn {
            owner: self,
            work: RefCell::new(self.tables.borrow().clone()),
            write,
            scope: None,
            failed: RefCell::default(),
        })
    }
    async fn begin_in(&self, write: bool, scope: &[Table<'_>]) -> Result<MemoryTxn<'_>> {
        let mut t = self.begin(write).await?;
        t.scope = Some(scope.iter().map(|t| table_name(*t)).collect());
        Ok(t)
    }
    fn set_note(&self, key: &str, value: Option<&str>) {
        let mut notes = self.notes.borrow_mut();
        match value {
            Some(v) => notes.insert(key.to_string(), v.to_string()),
            None => notes.remove(key),
        };
    }
    fn note(&self, key: &str) -> Option<String> {
        self.notes.borrow().get(key).cloned()
    }
}
