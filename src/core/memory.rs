//! An in-memory [`Storage`], for native tests and the simulator. Transactions work on a copy of
//! the tables and swap it in on commit, so a dropped transaction leaves nothing behind, as
//! IndexedDB's do. Crash tests clone the storage to keep "disk" while dropping everything else.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;

use super::error::{Error, ErrorKind, Result};
use super::storage::{index_value, Key, Storage, Table, Txn};

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
        }
    }
}

/// A transaction over [`MemoryStorage`].
pub struct MemoryTxn<'a> {
    owner: &'a MemoryStorage,
    work: RefCell<Tables>,
    write: bool,
}

impl MemoryTxn<'_> {
    fn read<T>(&self, t: Table<'_>, f: impl FnOnce(Option<&BTreeMap<Key, Value>>) -> T) -> T {
        let work = self.work.borrow();
        f(work.get(&table_name(t)))
    }
    fn check_write(&self) -> Result<()> {
        if self.write {
            Ok(())
        } else {
            Err(Error::storage("write in a read-only transaction"))
        }
    }
}

impl Txn for MemoryTxn<'_> {
    async fn get(&self, table: Table<'_>, key: &Key) -> Result<Option<Value>> {
        Ok(self.read(table, |t| t.and_then(|t| t.get(key).cloned())))
    }
    async fn get_all(&self, table: Table<'_>) -> Result<Vec<(Key, Value)>> {
        Ok(self.read(table, |t| {
            t.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        }))
    }
    async fn get_by_index(
        &self,
        table: Table<'_>,
        index: &str,
        value: &Value,
    ) -> Result<Vec<(Key, Value)>> {
        Ok(self.read(table, |t| {
            t.map(|t| {
                t.iter()
                    .filter(|(_, v)| index_value(index, v).as_ref() == Some(value))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
        }))
    }
    async fn count(&self, table: Table<'_>) -> Result<u64> {
        Ok(self.read(table, |t| t.map_or(0, |t| t.len() as u64)))
    }
    fn put(&self, table: Table<'_>, key: &Key, value: &Value) -> Result<()> {
        self.check_write()?;
        self.work
            .borrow_mut()
            .entry(table_name(table))
            .or_default()
            .insert(key.clone(), value.clone());
        Ok(())
    }
    fn delete(&self, table: Table<'_>, key: &Key) -> Result<()> {
        self.check_write()?;
        if let Some(t) = self.work.borrow_mut().get_mut(&table_name(table)) {
            t.remove(key);
        }
        Ok(())
    }
    async fn commit(self) -> Result<()> {
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
        })
    }
}
