//! `Ferry`: opening a store, its shared state, and the store-wide methods.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::core::sync::report::Resolution;
use crate::core::{Change, Engine, Error, StoreConfig};
use crate::web::js::{ferry_listen, ferry_on_line, FerryTabs};
use crate::web::{BrowserEnv, FetchTransport, IdbStorage};

use super::collection::Collection;
use super::convert::{js_error, to_js, to_record};
use super::driver::SyncState;
use super::events::Listeners;

/// The state one store's JS objects share.
pub struct Inner {
    pub(crate) engine: Engine<IdbStorage, BrowserEnv>,
    pub(crate) listeners: RefCell<Listeners>,
    pub(crate) sync: RefCell<SyncState>,
    pub(crate) transport: FetchTransport,
    pub(crate) get_headers: Option<Function>,
    pub(crate) auth: RefCell<Vec<(String, String)>>,
    /// The `getHeaders` call in flight, which overlapping callers share (`auth.rs`).
    pub(crate) headers_call: RefCell<Option<super::auth::HeadersCall>>,
    pub(crate) unlisten: RefCell<Vec<Function>>,
    pub(crate) resolver: Option<Function>,
    pub(crate) tabs: RefCell<Option<FerryTabs>>,
    /// The conflicts the resolver was asked about, or is being asked (see `offer_conflicts`).
    pub(crate) offered: RefCell<Vec<String>>,
}

impl Inner {
    /// Tells listeners, here and in the other tabs, about committed local changes.
    pub(crate) fn announce(&self, changes: &[Change]) {
        if !changes.is_empty() {
            self.emit_everywhere("changes", &changes);
        }
    }

    /// Registers a listener and returns its `unsubscribe` function; a closed store or a
    /// listener that is not a function is an error now, not a `TypeError` at every event.
    pub(crate) fn listen(
        self: &Rc<Self>,
        kind: &str,
        collection: Option<String>,
        f: Function,
    ) -> Result<JsValue, JsValue> {
        self.check_open()?;
        if !f.is_function() {
            return Err(js_error(Error::validation(format!(
                "a `{kind}` listener must be a function"
            ))));
        }
        let id = self.listeners.borrow_mut().add(kind, collection, f);
        let weak = Rc::downgrade(self);
        // Callable again (and after `close()`), doing nothing then, as unsubscribe functions
        // usually are.
        Ok(Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.listeners.borrow_mut().remove(id);
            }
        })
        .into_js_value())
    }

    /// A `ClosedError` once the store is closed.
    pub(crate) fn check_open(&self) -> Result<(), JsValue> {
        self.engine.check_open().map_err(js_error)
    }
}

/// An offline-first store: records in IndexedDB, an outbox of changes, sync to a REST server.
#[wasm_bindgen]
pub struct Ferry {
    inner: Rc<Inner>,
}

impl Ferry {
    /// The collection `name` (declared in the options), or an `UnknownCollectionError`.
    pub fn collection(&self, name: &str) -> Result<Collection, JsValue> {
        self.inner.check_open()?;
        self.inner.engine.collection(name).map_err(js_error)?;
        Ok(Collection {
            inner: self.inner.clone(),
            name: name.to_string(),
        })
    }

    fn settle(&self, conflict_id: JsValue, resolution: Result<Resolution, Error>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let conflict_id = id_arg(&conflict_id, "a conflict's `conflictId`")?;
            let report = inner
                .engine
                .resolve_conflict(&conflict_id, resolution.map_err(js_error)?)
                .await
                .map_err(js_error)?;
            inner.tell(&report);
            inner.kick();
            Ok(JsValue::UNDEFINED)
        })
    }
}

#[wasm_bindgen]
impl Ferry {
    /// Opens (or creates) the store. Opening with other collections than last time upgrades the
    /// database and keeps the data of the collections that remain.
    pub async fn open(
        #[wasm_bindgen(unchecked_param_type = "FerryOptions")] options: JsValue,
    ) -> Result<Ferry, JsValue> {
        if !options.is_object() {
            return Err(js_error(Error::validation(
                "Ferry.open takes an options object",
            )));
        }
        // Functions cannot cross as JSON: take them out of a shallow copy first.
        let copy = js_sys::Object::assign(&js_sys::Object::new(), options.unchecked_ref());
        let take = |name: &str| {
            let v = Reflect::get(&options, &name.into()).unwrap_or(JsValue::UNDEFINED);
            let _ = Reflect::delete_property(&copy, &name.into());
            if v.is_undefined() || v.is_null() {
                return Ok(None);
            }
            v.dyn_into::<Function>()
                .map(Some)
                .map_err(|_| js_error(Error::validation(format!("`{name}` must be a function"))))
        };
        let get_headers = take("getHeaders")?;
        let resolver = take("resolveConflict")?;
        // A function under another name is one of these two misspelt (`getheaders`): said so,
        // rather than that JSON cannot hold a function, which reads as "no functions here".
        for key in js_sys::Object::keys(&copy).iter() {
            if Reflect::get(&copy, &key).is_ok_and(|v| v.is_function()) {
                return Err(js_error(Error::validation(format!(
                    "unknown option `{}`, a function: {FUNCTION_OPTIONS}",
                    key.as_string().unwrap_or_default()
                ))));
            }
        }
        let raw = to_record(&copy, "the options").map_err(js_error)?;
        let config: StoreConfig =
            serde_json::from_value(serde_json::Value::Object(raw)).map_err(|e| {
                let e = e.to_string();
                // The store's own fields (a collection's do not list `collections`).
                let also = if e.starts_with("unknown field") && e.contains("`collections`") {
                    format!(" ({FUNCTION_OPTIONS})")
                } else {
                    String::new()
                };
                js_error(Error::validation(format!(
                    "the options are not valid: {e}{also}"
                )))
            })?;
        let mut config = config.validate().map_err(js_error)?;
        let origin = page_origin();
        for c in config.collections.values_mut() {
            c.page_origin = origin.clone();
        }
        let offline = config.offline;
        let storage = IdbStorage::open(&config).await.map_err(js_error)?;
        // An index another tab's configuration declares is kept up to date here too.
        for (c, field) in storage.kept() {
            if let Some(c) = config.collections.get_mut(c) {
                c.indexes.push(field.clone());
            }
        }
        let transport = FetchTransport {
            timeout_ms: config.timeout_ms,
            credentials: config.credentials,
        };
        let engine = Engine::open(config, storage, BrowserEnv::new())
            .await
            .map_err(js_error)?;
        let inner = Rc::new(Inner {
            engine,
            listeners: RefCell::new(Listeners::default()),
            sync: RefCell::new(SyncState::new(ferry_on_line(), offline)),
            transport,
            get_headers,
            auth: RefCell::new(Vec::new()),
            headers_call: RefCell::new(None),
            unlisten: RefCell::new(Vec::new()),
            resolver,
            tabs: RefCell::new(None),
            offered: RefCell::new(Vec::new()),
        });
        // These two hold the store itself, not a weak reference: a store the app no longer
        // refers to stays open (it may lead, and the other tabs wait on its lock) until it is
        // closed, when they are removed. Left to the garbage collector, it would be freed while
        // its tab lock stayed held, and no tab of it would ever send again.
        for kind in ["online", "offline"] {
            let held = inner.clone();
            let online = kind == "online";
            let f =
                Closure::<dyn FnMut()>::new(move || held.set_online(online, false)).into_js_value();
            let off = ferry_listen(kind, f.unchecked_ref());
            inner.unlisten.borrow_mut().push(off);
        }
        // A connection taken away (another tab upgrades the database) leaves this store unable
        // to flush: the lead goes to a tab that can.
        let weak = Rc::downgrade(&inner);
        inner.engine.storage.when_lost(move || {
            if let Some(inner) = weak.upgrade() {
                inner.lost_storage();
            }
        });
        // Syncing starts once this tab leads (at once, unless another tab of the store does).
        inner.join_tabs();
        Ok(Ferry { inner })
    }

    /// The collection `name` (declared in the options), or an `UnknownCollectionError`.
    // Taken as any value, so `collection(undefined)` is that error, not the glue's TypeError.
    #[wasm_bindgen(js_name = collection)]
    pub fn collection_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: JsValue,
    ) -> Result<Collection, JsValue> {
        match name.as_string() {
            Some(name) => self.collection(&name),
            None => {
                self.inner.check_open()?;
                Err(js_error(Error::new(
                    crate::core::ErrorKind::UnknownCollection,
                    format!("a collection name is a string, got {}", kind_of(&name)),
                )))
            }
        }
    }

    /// How many mutations wait to be sent.
    #[wasm_bindgen(js_name = pendingCount, unchecked_return_type = "Promise<number>")]
    pub fn pending_count(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            Ok(JsValue::from_f64(
                inner.engine.pending_count().await.map_err(js_error)? as f64,
            ))
        })
    }

    /// The pending mutations, in the order they will be sent.
    #[wasm_bindgen(unchecked_return_type = "Promise<OutboxEntry[]>")]
    pub fn outbox(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { Ok(to_js(&inner.engine.outbox().await.map_err(js_error)?)) })
    }

    /// Mutations the server refused for good (4xx other than 401, 404 on delete, 409 and 412).
    #[wasm_bindgen(unchecked_return_type = "Promise<RejectedMutation[]>")]
    pub fn rejected(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(
            async move { Ok(to_js(&inner.engine.rejected().await.map_err(js_error)?)) },
        )
    }

    /// Makes a rejected mutation again (as a new mutation) and queues it; `changes` (fields,
    /// for a create or an update) are made over it, in the same mutation: the fix for what the
    /// server refused. (Its TypeScript signature, with `changes` optional, is in `types.rs`.)
    #[wasm_bindgen(js_name = retryRejected, skip_typescript)]
    pub fn retry_rejected(&self, mutation_id: JsValue, changes: Option<JsValue>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let mutation_id = id_arg(&mutation_id, MUTATION_ID)?;
            let fix = match changes.filter(|c| !c.is_undefined() && !c.is_null()) {
                Some(c) => to_record(&c, "the changes").map_err(js_error)?,
                None => Default::default(),
            };
            let changes = inner
                .engine
                .retry_rejected_with(&mutation_id, fix)
                .await
                .map_err(js_error)?;
            inner.announce(&changes);
            inner.after_write();
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Forgets a rejected mutation.
    #[wasm_bindgen(js_name = discardRejected, unchecked_return_type = "Promise<void>")]
    pub fn discard_rejected(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] mutation_id: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let mutation_id = id_arg(&mutation_id, MUTATION_ID)?;
            inner
                .engine
                .discard_rejected(&mutation_id)
                .await
                .map_err(js_error)?;
            inner.emit_status();
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Moves a pending mutation that the server keeps failing (a 5xx every time, never a
    /// refusal) to the rejected list, as if the server had refused it (status 0): the record
    /// goes back to the server's state, and `retryRejected` or `discardRejected` then apply.
    /// Only a record's first pending mutation, and only once an attempt of it has failed (not
    /// while it is being sent).
    #[wasm_bindgen(js_name = rejectPending, unchecked_return_type = "Promise<void>")]
    pub fn reject_pending(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] mutation_id: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let mutation_id = id_arg(&mutation_id, MUTATION_ID)?;
            let report = inner
                .engine
                .reject_pending(&mutation_id)
                .await
                .map_err(js_error)?;
            inner.dispatch(report);
            inner.emit_status();
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Sends the outbox now (then pulls, with `pullAfterFlush`). Resolves when the run ends
    /// with nothing left that it can send: the outbox is empty, or holds only writes held
    /// behind a conflict that waits for a decision (`conflicts()`). Rejects with an
    /// `OfflineError`, or with the error that stopped it.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn sync(&self) -> Promise {
        self.inner.request_sync()
    }

    /// The sync status: online, flushing, pending and rejected counts, last error, next retry.
    #[wasm_bindgen(unchecked_return_type = "Promise<SyncStatus>")]
    pub fn status(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { Ok(to_js(&inner.status().await.map_err(js_error)?)) })
    }

    /// Listens to `change`, `idChange`, `rejected`, `conflict` or `status` events. Returns the
    /// function that stops listening. Its TypeScript signature is generic over the event (see
    /// `types.rs`), which wasm-bindgen cannot write itself.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, kind: &str, listener: Function) -> Result<JsValue, JsValue> {
        if !["change", "idChange", "rejected", "conflict", "status"].contains(&kind) {
            return Err(js_error(Error::validation(format!(
                "unknown event {kind:?}"
            ))));
        }
        self.inner.listen(kind, None, listener)
    }

    /// Conflicts that wait for a decision (collections with `conflict: "custom"`): deferred or
    /// failed by the resolver, or met without one. They survive reloads.
    #[wasm_bindgen(unchecked_return_type = "Promise<OpenConflict[]>")]
    pub fn conflicts(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(
            async move { Ok(to_js(&inner.engine.conflicts().await.map_err(js_error)?)) },
        )
    }

    /// Settles an open conflict: `record` is the result (sent over the server's version), `null`
    /// deletes the record. Its record's held-back mutations then go on.
    #[wasm_bindgen(js_name = resolveConflict, unchecked_return_type = "Promise<void>")]
    pub fn resolve_conflict(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] conflict_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "FerryRecord | null")] record: JsValue,
    ) -> Promise {
        let resolution = if record.is_null() {
            Ok(Resolution::Delete)
        } else {
            to_record(&record, "the resolved record").map(Resolution::Record)
        };
        self.settle(conflict_id, resolution)
    }

    /// Settles an open conflict by dropping the local change: the server's state stands.
    #[wasm_bindgen(js_name = discardConflict, unchecked_return_type = "Promise<void>")]
    pub fn discard_conflict(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] conflict_id: JsValue,
    ) -> Promise {
        self.settle(conflict_id, Ok(Resolution::Discard))
    }

    /// Takes the store offline (`true`) or back (`false`) whatever the browser says, in every tab
    /// of it: nothing is sent while it is offline. Local reads and writes work either way.
    // Taken as any value: the glue would read `"true"` (a toggle kept in `localStorage`) as
    // `false`, and the store would go on sending while the app shows it offline.
    #[wasm_bindgen(js_name = setOffline)]
    pub fn set_offline(
        &self,
        #[wasm_bindgen(unchecked_param_type = "boolean")] offline: JsValue,
    ) -> Result<(), JsValue> {
        self.inner.check_open()?;
        let offline = offline.as_bool().ok_or_else(|| {
            js_error(Error::validation(format!(
                "setOffline takes true or false, got {}",
                kind_of(&offline)
            )))
        })?;
        self.inner.set_offline_everywhere(offline);
        Ok(())
    }

    /// Closes the store: sync stops, listeners are dropped, later calls fail with `ClosedError`.
    pub fn close(&self) {
        self.inner.engine.storage.close();
        self.inner.shut("the store is closed");
        self.inner.listeners.borrow_mut().clear();
    }
}

/// What a JS value is, for messages: `undefined`, `null`, `a number`...
fn kind_of(v: &JsValue) -> String {
    if v.is_undefined() {
        "undefined".into()
    } else if v.is_null() {
        "null".into()
    } else {
        format!("a {}", v.js_typeof().as_string().unwrap_or_default())
    }
}

const MUTATION_ID: &str = "a rejected mutation's `mutationId`";
const FUNCTION_OPTIONS: &str =
    "the options that take a function are `getHeaders` and `resolveConflict`";

/// An id argument (`retryRejected`, `resolveConflict`...): a string, else a `ValidationError`
/// that names what was expected, not the glue's `TypeError`.
fn id_arg(v: &JsValue, what: &str) -> Result<String, JsValue> {
    v.as_string().ok_or_else(|| {
        js_error(Error::validation(format!(
            "{what} is a string, got {}",
            kind_of(v)
        )))
    })
}

/// The origin of the page (or worker) Ferry runs in: what a collection's path URL resolves to.
/// `location.origin` (inherited by `about:srcdoc` frames and blob workers), else, in a
/// sandboxed frame where it is `"null"`, its URL's scheme and host, where its requests go.
fn page_origin() -> Option<String> {
    let location = Reflect::get(&js_sys::global(), &"location".into()).ok()?;
    let part = |name: &str| Reflect::get(&location, &name.into()).ok()?.as_string();
    match part("origin") {
        Some(origin) if origin != "null" => Some(origin),
        _ => Some(format!("{}//{}", part("protocol")?, part("host")?)),
    }
}
