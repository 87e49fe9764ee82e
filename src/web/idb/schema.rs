//! The layout of a Ferry database and how an open brings the database to it: open without a
//! version, compare, and when stores or indexes are missing reopen one version up and create
//! them in `upgradeneeded`. Nothing is ever deleted: a store or an index another configuration
//! declares (an older page still open, another part of the app) stays, and this one keeps such
//! an index up to date too (`kept`), so that tabs that differ never upgrade back and forth,
//! closing each other, and an index never misses what a tab without it wrote.

use std::cell::{Cell, OnceCell};
use std::rc::Rc;

use indexed_db_futures::database::{Database, VersionChangeEvent};
use indexed_db_futures::error::{Error as IdbError, OpenDbError};
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::Build;
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{DomException, DomStringList, IdbDatabase, IdbObjectStore, IdbTransaction};

use super::{idb_error, lib_error, open_error, store_name, RECORDS_PREFIX};
use crate::core::config::StoreConfig;
use crate::core::error::{Error, Result};
use crate::core::storage::{field_index, Table, FIELD_INDEX_PREFIX, OUTBOX_BY_RECORD};

/// An empty store whose presence says that the records stores keep ghosts (`ghost` in
/// `record.rs`): the upgrade that creates it lays them for what a database from before them holds
/// (pending mutations without a row, aliases), in the same transaction. Store names are known
/// without a request, so the usual open still reads nothing.
const GHOSTS_KEPT: &str = "ghosts";

/// How often `open` looks again when other tabs change the database between its look and its
/// upgrade.
const OPEN_ATTEMPTS: usize = 5;

/// An index: its name and its key path (one path, or a compound of several), and for the index
/// of a record field, the field.
struct IndexSpec {
    name: String,
    path: Vec<String>,
    field: Option<String>,
}

/// A store and its indexes; `collection`: the collection whose records it holds.
struct StoreSpec {
    name: String,
    indexes: Vec<IndexSpec>,
    collection: Option<String>,
}

fn index(name: String, path: &[&str]) -> IndexSpec {
    IndexSpec {
        name,
        path: path.iter().map(|p| p.to_string()).collect(),
        field: None,
    }
}

fn layout(config: &StoreConfig) -> Vec<StoreSpec> {
    let fixed = [
        Table::State,
        Table::Aliases,
        Table::Rejected,
        Table::Conflicts,
    ];
    let mut stores = vec![StoreSpec {
        name: store_name(Table::Outbox).into_owned(),
        indexes: vec![index(OUTBOX_BY_RECORD.into(), &["c", "r"])],
        collection: None,
    }];
    let fixed = fixed.into_iter().map(store_name).map(|n| n.into_owned());
    stores.extend(fixed.chain([GHOSTS_KEPT.into()]).map(|name| StoreSpec {
        name,
        indexes: Vec::new(),
        collection: None,
    }));
    stores.extend(config.collections.values().map(|c| {
        StoreSpec {
            name: store_name(Table::Records(&c.name)).into_owned(),
            indexes: c
                .indexes
                .iter()
                .map(|f| IndexSpec {
                    field: Some(f.clone()),
                    ..index(field_index(f), &[&field_index(f)])
                })
                .collect(),
            collection: Some(c.name.clone()),
        }
    }));
    stores
}

/// One difference between the layout and the database.
enum Change<'s> {
    CreateStore(&'s StoreSpec),
    CreateIndex(&'s StoreSpec, &'s IndexSpec),
}

/// What must change so that a database with `stores` (and `indexes` on each store that exists)
/// holds `layout`. No store is ever deleted: a collection left out of this configuration (an
/// older page, another part of the app) keeps its records and its pending mutations for the
/// store that declares it again. No index either (see `kept`).
fn diff<'s>(
    layout: &'s [StoreSpec],
    stores: &[String],
    indexes: impl Fn(&str) -> Result<Vec<String>>,
) -> Result<Vec<Change<'s>>> {
    let mut out = Vec::new();
    for spec in layout {
        if !stores.contains(&spec.name) {
            out.push(Change::CreateStore(spec));
            continue;
        }
        let have = indexes(&spec.name)?;
        for ix in spec.indexes.iter().filter(|ix| !have.contains(&ix.name)) {
            out.push(Change::CreateIndex(spec, ix));
        }
    }
    Ok(out)
}

/// The field indexes the database has on the declared collections' stores beyond `layout`'s,
/// as `(collection, field)`: this tab's writes keep them up to date, as the tab that declares
/// them would (rows carry a key for every index of their store).
fn kept(
    layout: &[StoreSpec],
    indexes: impl Fn(&str) -> Result<Vec<String>>,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for spec in layout {
        let Some(c) = &spec.collection else { continue };
        for name in indexes(&spec.name)? {
            let field = name.strip_prefix(FIELD_INDEX_PREFIX);
            if let (Some(f), false) = (field, spec.indexes.iter().any(|ix| ix.name == name)) {
                out.push((c.clone(), f.to_string()));
            }
        }
    }
    Ok(out)
}

/// The index names of each store of `tx`, for [`diff`].
fn indexes_in(tx: &IdbTransaction) -> impl Fn(&str) -> Result<Vec<String>> + '_ {
    |store| {
        let store = tx.object_store(store).map_err(|e| idb_error(&e))?;
        Ok(names(store.index_names()))
    }
}

/// Carries out `changes` inside `upgradeneeded` (`vtx` is the version-change transaction).
fn apply(db: &IdbDatabase, vtx: &IdbTransaction, changes: &[Change<'_>]) -> Result<(), JsValue> {
    // Rows already in a store lack the keys of the indexes created on it now: one cursor per
    // store adds them all (two cursors would each write back a row without the other's key), in
    // this same transaction, so the indexes and their keys appear together or not at all.
    let mut rekey: Vec<(&str, js_sys::Array)> = Vec::new();
    let mut lay_ghosts = false;
    for change in changes {
        match change {
            Change::CreateStore(spec) => {
                let store = db.create_object_store(&spec.name)?;
                for ix in &spec.indexes {
                    create_index(&store, ix)?;
                }
                lay_ghosts |= spec.name == GHOSTS_KEPT;
            }
            Change::CreateIndex(spec, ix) => {
                create_index(&vtx.object_store(&spec.name)?, ix)?;
                if let Some(field) = &ix.field {
                    let at = match rekey.iter().position(|(n, _)| *n == spec.name) {
                        Some(i) => i,
                        None => {
                            rekey.push((&spec.name, js_sys::Array::new()));
                            rekey.len() - 1
                        }
                    };
                    rekey[at].1.push(&JsValue::from_str(field));
                }
            }
        }
    }
    for (name, fields) in rekey {
        ferry_reindex(&vtx.object_store(name)?, &fields)?;
    }
    if lay_ghosts {
        ferry_lay_ghosts(vtx, RECORDS_PREFIX)?;
    }
    Ok(())
}

#[wasm_bindgen(inline_js = r#"
// The index key of a field value, as the engine's `index_key` makes it: a missing field and null
// are [0], booleans [1, 0|1], numbers [2, n], strings [3, s]; objects and arrays have none.
function key(d, field) {
  const v = Object.prototype.hasOwnProperty.call(d, field) ? d[field] : null;
  if (v === undefined || v === null) return [0];
  switch (typeof v) {
    case 'boolean': return [1, v ? 1 : 0];
    case 'number': return [2, v];
    case 'string': return [3, v];
  }
  return undefined;
}
export function ferry_reindex(store, fields) {
  const r = store.openCursor();
  r.onsuccess = () => {
    const c = r.result;
    if (!c) return;
    const row = c.value;
    if (row && typeof row === 'object' && row.d && typeof row.d === 'object') {
      const ix = row.ix && typeof row.ix === 'object' ? row.ix : {};
      for (const field of fields) {
        const k = key(row.d, field);
        // defineProperty: a field named __proto__ is a key like any other, not the prototype.
        if (k === undefined) delete ix[field];
        else Object.defineProperty(ix, field, { value: k, enumerable: true, writable: true, configurable: true });
      }
      row.ix = ix;
      c.update(row);
    }
    c.continue();
  };
}
// The ghosts a database from before them lacks: under every id with a pending mutation and no
// row (a pending delete), and every id an alias renamed (`ghost` and `Tx::delete_row`). Ferry's
// own temporary ids get none, as `delete_row` gives them none.
export function ferry_lay_ghosts(vtx, prefix) {
  const names = vtx.db.objectStoreNames;
  const temp = /^tmp-(.+)-(\d{10,})$/;
  const lay = (c, id) => {
    if (typeof c !== 'string' || typeof id !== 'string' || temp.test(id)) return;
    if (!names.contains(prefix + c)) return;
    const s = vtx.objectStore(prefix + c);
    const r = s.getKey(id);
    r.onsuccess = () => { if (r.result === undefined) s.put({ g: 1 }, id); };
  };
  const each = (store, f) => {
    const r = vtx.objectStore(store).openCursor();
    r.onsuccess = () => {
      const c = r.result;
      if (!c) return;
      f(c.key, c.value);
      c.continue();
    };
  };
  each('outbox', (_, e) => { if (e !== null && typeof e === 'object') lay(e.c, e.r); });
  each('aliases', (k) => { if (Array.isArray(k) && k.length === 2) lay(k[0], k[1]); });
}
"#)]
extern "C" {
    /// Lays the ghosts a database from before them lacks (inside the version-change transaction).
    #[wasm_bindgen(catch)]
    fn ferry_lay_ghosts(vtx: &IdbTransaction, records_prefix: &str) -> Result<(), JsValue>;

    /// Sets `ix[field]` of every row of `store` from `d[field]` for each of `fields`, by one
    /// cursor (inside the version-change transaction, which stays open until it is done).
    #[wasm_bindgen(catch)]
    fn ferry_reindex(store: &IdbObjectStore, fields: &js_sys::Array) -> Result<(), JsValue>;
}

fn create_index(store: &IdbObjectStore, ix: &IndexSpec) -> Result<(), JsValue> {
    match ix.path.as_slice() {
        [one] => store.create_index_with_str(&ix.name, one)?,
        many => {
            let path: js_sys::Array = many.iter().map(|p| JsValue::from_str(p)).collect();
            store.create_index_with_str_sequence(&ix.name, &path)?
        }
    };
    Ok(())
}

fn names(list: DomStringList) -> Vec<String> {
    (0..list.length()).filter_map(|i| list.item(i)).collect()
}

/// What an open found: the connection, the names of every store (for transactions), and the
/// field indexes kept beyond the configuration's (`kept`).
pub(super) type Opened = (Database, Vec<String>, Vec<(String, String)>);

/// Opens the database `config.name` with the layout `config` asks for, upgrading it when it
/// lacks something.
pub(super) async fn open(config: &StoreConfig) -> Result<Opened> {
    let layout = Rc::new(layout(config));
    // Every store, the declared collections' and those kept for collections left out (whose
    // pending mutations the outbox still lists).
    let stores = |db: &Database| names(db.as_sys().object_store_names());
    let name = config.name.as_str();
    for _ in 0..OPEN_ATTEMPTS {
        let db = Database::open(name)
            .await
            .map_err(|e| open_error(name, e))?;
        match look(&db, &layout) {
            Ok((false, kept)) => {
                let all = stores(&db);
                return Ok((db, all, kept));
            }
            Ok((true, _)) => {}
            Err(e) => {
                db.close();
                return Err(e);
            }
        }
        let version = db.version() + 1.0;
        db.close();
        if let Some(db) = upgrade(name, version, layout.clone()).await? {
            return match look(&db, &layout) {
                Ok((_, kept)) => {
                    let all = stores(&db);
                    Ok((db, all, kept))
                }
                Err(e) => {
                    db.close();
                    Err(e)
                }
            };
        }
    }
    Err(Error::storage(format!(
        "IndexedDB: other tabs keep changing database {name:?}; \
         it could not be brought to this configuration"
    )))
}

/// Whether `db` lacks something of `layout`, and the field indexes it has beyond it (`kept`).
fn look(db: &Database, layout: &[StoreSpec]) -> Result<(bool, Vec<(String, String)>)> {
    let stores = names(db.as_sys().object_store_names());
    if layout.iter().any(|spec| !stores.contains(&spec.name)) {
        return Ok((true, Vec::new()));
    }
    let all: Vec<&str> = layout.iter().map(|spec| spec.name.as_str()).collect();
    let tx = db.transaction(all.as_slice()).build().map_err(lib_error)?;
    let indexes = indexes_in(tx.as_sys());
    let outdated = !diff(layout, &stores, &indexes)?.is_empty();
    Ok((outdated, kept(layout, &indexes)?))
}

/// Opens `name` at `version`, bringing it to `layout` in `upgradeneeded`. `None` when no upgrade
/// ran, or another tab had taken the database past `version`: the caller looks again.
async fn upgrade(name: &str, version: f64, layout: Rc<Vec<StoreSpec>>) -> Result<Option<Database>> {
    let request: Rc<OnceCell<web_sys::IdbOpenDbRequest>> = Rc::default();
    let failure: Rc<OnceCell<Error>> = Rc::default();
    let ran = Rc::new(Cell::new(false));
    let on_upgrade = {
        let (request, failure, ran) = (request.clone(), failure.clone(), ran.clone());
        move |_: VersionChangeEvent, db: Database| -> indexed_db_futures::Result<()> {
            ran.set(true);
            let raw: &IdbDatabase = db.as_sys();
            let result = match request.get().and_then(|r| r.transaction()) {
                Some(vtx) => diff(&layout, &names(raw.object_store_names()), indexes_in(&vtx))
                    .and_then(|changes| apply(raw, &vtx, &changes).map_err(|e| idb_error(&e))),
                None => Err(Error::storage(
                    "IndexedDB: upgradeneeded without its transaction",
                )),
            };
            result.map_err(|e| {
                let js = JsValue::from(js_sys::Error::new(&e.message));
                let _ = failure.set(e);
                IdbError::from(js) // thrown from the handler: the upgrade aborts
            })
        }
    };
    let db_name = name.to_string();
    let on_blocked = move |e: VersionChangeEvent| -> indexed_db_futures::Result<()> {
        let msg = format!(
            "Ferry: upgrading IndexedDB database {db_name:?} to version {} waits for other \
             connections (an older tab?) to close",
            e.new_version().unwrap_or_default() as u64
        );
        web_sys::console::warn_1(&JsValue::from_str(&msg));
        Ok(())
    };
    let open = Database::open(name)
        .with_version(version)
        .with_on_upgrade_needed(on_upgrade)
        .with_on_blocked(on_blocked)
        .build()
        .map_err(|e| open_error(name, e))?;
    let _ = request.set(open.as_sys().clone());
    match open.await {
        Ok(db) if ran.get() => Ok(Some(db)),
        Ok(db) => {
            db.close();
            Ok(None)
        }
        Err(e) => match Rc::try_unwrap(failure).ok().and_then(OnceCell::into_inner) {
            Some(ours) => Err(ours),
            None if is_version_error(&e) => Ok(None),
            None => Err(open_error(name, e)),
        },
    }
}

fn is_version_error(e: &OpenDbError) -> bool {
    match e {
        OpenDbError::Base(IdbError::DomException(d)) => {
            let js: &JsValue = d.as_ref();
            js.dyn_ref::<DomException>()
                .is_some_and(|d| d.name() == "VersionError")
        }
        _ => false,
    }
}
