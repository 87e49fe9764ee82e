//! The sync driver: when to flush (open, `online`, shortly after writes, retry timers), one run
//! at a time, and what to tell the app. Connectivity events are hints; a request's outcome is
//! the truth, so a failed request backs off even when the browser says it is online.

use std::rc::Rc;

use js_sys::{Function, Promise};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use crate::core::sync::flush::RoundEnd;
use crate::core::sync::report::Report;
use crate::core::{Error, ErrorKind};
use crate::web::js::Timer;

use super::convert::{js_error, to_js};
use super::events::emit;
use super::ferry::Inner;

/// The driver's state.
pub struct SyncState {
    pub(crate) online: bool,
    pub(crate) running: bool,
    rerun: bool,
    pub(crate) pull_next: bool,
    last_error: Option<Error>,
    pub(crate) next_retry: Option<f64>,
    pub(crate) timer: Option<Timer>,
    pub(crate) waiters: Vec<(Function, Function)>,
    /// This tab's `sync()` calls that the leading tab carries out, by request id.
    pub(crate) remote_waiters: Vec<(String, Function, Function)>,
    /// Request ids of other tabs' `sync()` calls that the current run serves (leader).
    pub(crate) served: Vec<String>,
    /// Makes request ids unique across tabs.
    pub(crate) tab_id: String,
    next_request: u64,
    /// This tab holds the store's lock and is the one that flushes.
    pub(crate) leader: bool,
    /// The timer of the next periodic pull (`pullIntervalMs`).
    pub(crate) poll_timer: Option<Timer>,
    /// A tab that declares more collections asked for the lead: it goes when the run ends.
    pub(crate) hand_over: bool,
    /// A `sync()` (here or in a follower) came while the run was out: it gets a run of its
    /// own, also when this one fails, rather than this one's outcome.
    pub(crate) asked: bool,
    /// The last `setOffline` of the store this tab made or heard since it opened (the `offline`
    /// option counts as one): `Some(true)` holds the store offline whatever the browser says.
    /// A tab that opens later asks ("hello"), and one that knows the store is offline says so.
    pub(crate) offline_call: Option<bool>,
    /// When that call was made (ms) and by which tab: of two calls that cross between tabs,
    /// every tab keeps the later one (the tab id breaks a tie), so they agree.
    pub(crate) offline_at: (f64, String),
}

impl SyncState {
    /// Starts online or offline, as `navigator.onLine` (and the `offline` option) say.
    pub fn new(online: bool, forced_offline: bool) -> Self {
        SyncState {
            online,
            running: false,
            rerun: false,
            pull_next: false,
            last_error: None,
            next_retry: None,
            timer: None,
            waiters: Vec::new(),
            remote_waiters: Vec::new(),
            served: Vec::new(),
            tab_id: format!("{:x}", (js_sys::Math::random() * 1e15) as u64),
            next_request: 0,
            leader: false,
            poll_timer: None,
            hand_over: false,
            asked: false,
            // The `offline` option is a `setOffline(true)` made at open.
            offline_call: forced_offline.then_some(true),
            offline_at: (0.0, String::new()),
        }
    }

    /// Online as far as sync is concerned: the browser says so and the app did not say no.
    pub(crate) fn is_online(&self) -> bool {
        self.online && self.offline_call != Some(true)
    }
}

/// What `db.status()` reports.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    online: bool,
    flushing: bool,
    leader: bool,
    pending: u64,
    rejected: u64,
    last_error: Option<String>,
    /// The last error's `name` and HTTP status: an app can tell "log in again" (a 401) from
    /// "the server is down" without reading the message.
    last_error_name: Option<&'static str>,
    last_error_status: Option<u16>,
    next_retry_at: Option<f64>,
}

/// How often a store that met the browser offline without hearing an `offline` event tries
/// again (ms).
const OFFLINE_RETRY_MS: f64 = 10_000.0;
/// How long credentials that fresh headers did not cure pause the queue.
const AUTH_PAUSE_MS: f64 = 30_000.0;
/// How soon a run whose `getHeaders` failed (threw, rejected, timed out, gave no headers) is
/// tried again.
const HEADERS_RETRY_MS: f64 = 10_000.0;
/// Why nothing is sent: the browser says it is offline, or the app took the store offline.
const OFFLINE: &str =
    "the store is offline (the browser says so, or the app called setOffline(true))";

enum RunEnd {
    Done,
    Failed(Error, Option<f64>),
}

impl Inner {
    /// The current status.
    pub(crate) async fn status(&self) -> Result<Status, Error> {
        let (pending, rejected) = self.engine.counts().await?;
        let s = self.sync.borrow();
        Ok(Status {
            online: s.is_online(),
            flushing: s.running,
            leader: s.leader,
            pending,
            rejected,
            last_error: s.last_error.as_ref().map(|e| e.message.clone()),
            last_error_name: s.last_error.as_ref().map(|e| e.kind.name()),
            last_error_status: s.last_error.as_ref().and_then(|e| e.status),
            next_retry_at: s.next_retry,
        })
    }

    /// Emits a `status` event (after reading the counts).
    pub(crate) fn emit_status(self: &Rc<Self>) {
        // Counting reads storage: only when someone listens (writes call this every time).
        if !self.listeners.borrow().has("status") {
            return;
        }
        let inner = self.clone();
        spawn_local(async move {
            if let Ok(s) = inner.status().await {
                emit(&inner.listeners, "status", None, &to_js(&s));
            }
        });
    }

    /// Called after every local write: flush soon (debounced), unless a retry wait is on.
    pub(crate) fn after_write(self: &Rc<Self>) {
        self.emit_status();
        let (online, waiting) = {
            let s = self.sync.borrow();
            if !s.leader {
                return; // the leading tab heard of the write and flushes
            }
            (
                s.is_online(),
                s.next_retry.is_some_and(|t| t > js_sys::Date::now()),
            )
        };
        if self.engine.config.auto_sync && online && !waiting {
            self.schedule(f64::from(self.engine.config.debounce_ms));
        }
    }

    /// Arms the next periodic pull (`pullIntervalMs`), replacing any armed one.
    fn schedule_poll(self: &Rc<Self>) {
        let every = self.engine.config.pull_interval_ms;
        if every == 0 || self.engine.is_closed() {
            return;
        }
        let weak = Rc::downgrade(self);
        let timer = Timer::new(f64::from(every), move || {
            if let Some(inner) = weak.upgrade() {
                let waiting = {
                    let mut s = inner.sync.borrow_mut();
                    s.poll_timer = None;
                    s.pull_next = true;
                    // A retry wait has its own timer; polling must not cut it short.
                    s.next_retry.is_some_and(|t| t > js_sys::Date::now())
                };
                if !waiting {
                    inner.kick();
                }
            }
        });
        let old = self.sync.borrow_mut().poll_timer.replace(timer);
        drop(old);
    }

    fn schedule(self: &Rc<Self>, ms: f64) {
        let weak = Rc::downgrade(self);
        let timer = Timer::new(ms, move || {
            if let Some(inner) = weak.upgrade() {
                let fired = inner.sync.borrow_mut().timer.take();
                drop(fired);
                inner.kick();
            }
        });
        let old = self.sync.borrow_mut().timer.replace(timer);
        drop(old);
    }

    /// Starts a run now, or asks the current run to go round once more.
    pub(crate) fn kick(self: &Rc<Self>) {
        {
            let mut s = self.sync.borrow_mut();
            if self.engine.is_closed() || !s.is_online() {
                return;
            }
            if !s.leader {
                drop(s);
                self.tell_tabs("kick", &JsValue::NULL);
                return;
            }
            if s.running {
                s.rerun = true;
                return;
            }
            s.running = true;
            drop(s.timer.take()); // the run starts now
        }
        let inner = self.clone();
        spawn_local(async move { inner.run().await });
    }

    /// `db.sync()`: a promise settled when the next run ends.
    pub(crate) fn request_sync(self: &Rc<Self>) -> Promise {
        let inner = self.clone();
        Promise::new(&mut |resolve, reject| {
            let online = inner.sync.borrow().is_online();
            // Closed by the app, or the connection taken away (another tab's upgrade or delete,
            // the browser clearing storage; `lost_storage` closes the engine with the reason):
            // no run will ever settle this call.
            if let Err(e) = inner.engine.check_open() {
                let _ = reject.call1(&JsValue::NULL, &js_error(e));
            } else if !online {
                let _ = reject.call1(
                    &JsValue::NULL,
                    &js_error(Error::new(ErrorKind::Offline, OFFLINE)),
                );
            } else {
                let mut s = inner.sync.borrow_mut();
                s.pull_next = true;
                s.next_retry = None;
                if s.leader {
                    s.waiters.push((resolve, reject));
                    s.asked |= s.running;
                    drop(s);
                    inner.kick();
                } else {
                    // The leading tab flushes; its `done` naming this request settles it.
                    s.next_request += 1;
                    let id = format!("{}-{}", s.tab_id, s.next_request);
                    s.remote_waiters.push((id.clone(), resolve, reject));
                    drop(s);
                    inner.tell_tabs("kick", &to_js(&serde_json::json!({ "ids": [id] })));
                }
            }
        })
    }

    async fn run(self: Rc<Self>) {
        self.emit_status();
        let end = loop {
            let end = self.run_once().await;
            let mut s = self.sync.borrow_mut();
            // Asked to go round again during the run: after a clean end, or when the run met the
            // browser offline and it is back (its `online` event came while the run ended,
            // and will not come again).
            let offline = matches!(&end, RunEnd::Failed(e, _) if e.kind == ErrorKind::Offline);
            let again = matches!(end, RunEnd::Done) || (offline && s.is_online()) || s.asked;
            if s.rerun && again && !self.engine.is_closed() && !s.hand_over {
                s.rerun = false;
                s.asked = false;
                continue;
            }
            s.asked = false;
            s.rerun = false;
            s.running = false;
            break end;
        };
        let (waiters, served) = {
            let mut s = self.sync.borrow_mut();
            (
                std::mem::take(&mut s.waiters),
                std::mem::take(&mut s.served),
            )
        };
        match end {
            RunEnd::Done => {
                {
                    let mut s = self.sync.borrow_mut();
                    s.last_error = None;
                    s.next_retry = None;
                }
                for (resolve, _) in waiters {
                    let _ = resolve.call0(&JsValue::NULL);
                }
                self.tell_tabs("done", &to_js(&serde_json::json!({ "ids": served })));
                self.schedule_poll();
            }
            RunEnd::Failed(e, retry_at) => {
                let retry_at = {
                    let mut s = self.sync.borrow_mut();
                    // The browser said offline when a request left, but no `offline` event
                    // came (a worker may hear none): its `online` may not come either, so the
                    // run is tried again now and then.
                    let unheard = e.kind == ErrorKind::Offline && s.is_online();
                    let retry_at = retry_at
                        .or_else(|| unheard.then(|| js_sys::Date::now() + OFFLINE_RETRY_MS));
                    s.last_error = Some(e.clone());
                    s.next_retry = retry_at;
                    retry_at
                };
                if let (Some(at), true) = (retry_at, self.engine.config.auto_sync) {
                    self.schedule(at - js_sys::Date::now());
                }
                // Periodic pulls go on while a mutation waits for its retry.
                self.schedule_poll();
                let body = serde_json::json!({
                    "ids": served,
                    "error": { "name": e.kind.name(), "message": e.message },
                });
                self.tell_tabs("done", &to_js(&body));
                let err = js_error(e);
                for (_, reject) in waiters {
                    let _ = reject.call1(&JsValue::NULL, &err);
                }
            }
        }
        // Asked during the run for the lead by a tab that declares more: it goes now.
        if self.sync.borrow().hand_over {
            self.hand_over();
        }
        self.emit_status();
        // Conflicts left open by this run go to the app's resolver; what it settles is sent.
        // A tab that handed the lead on leaves them to the new leader, which offers them too.
        if self.sync.borrow().leader && self.offer_conflicts().await {
            self.kick();
        }
    }

    pub(crate) fn dispatch(self: &Rc<Self>, report: Report) {
        let quiet = report.changes.is_empty()
            && report.ids.is_empty()
            && report.rejected.is_empty()
            && report.conflicts.is_empty();
        if !quiet {
            self.tell(&report);
        }
    }

    /// Emits a sync report's events here and in the other tabs, then forgets the settled
    /// conflicts kept until they were told (`core/sync/untold.rs`).
    pub(crate) fn tell(self: &Rc<Self>, report: &Report) {
        self.emit_everywhere("report", report);
        if !report.untold.is_empty() {
            let inner = self.clone();
            let keys = report.untold.clone();
            spawn_local(async move {
                let _ = inner.engine.told(&keys).await; // left kept, they are told again
            });
        }
    }

    /// Tells the settled conflicts that the tab that led before this one kept and could not
    /// tell (it unloaded between settling them and telling), in a task after `open`'s, so that
    /// the listeners an app puts on right after `await Ferry.open(...)` hear them. Called when
    /// this tab takes the lead, as only the leading tab settles conflicts.
    pub(crate) fn tell_untold(self: &Rc<Self>) {
        let inner = self.clone();
        spawn_local(async move {
            let Ok(report) = inner.engine.untold_conflicts().await else {
                return;
            };
            if !report.untold.is_empty() {
                crate::web::js::sleep(0.0).await;
                if !inner.engine.is_closed() {
                    inner.tell(&report);
                }
            }
        });
    }

    async fn run_once(self: &Rc<Self>) -> RunEnd {
        // A getHeaders that failed (its refresh endpoint unreachable, say) is asked again later.
        let again = || Some(js_sys::Date::now() + HEADERS_RETRY_MS);
        let mut headers = match self.headers().await {
            Ok(h) => h,
            Err(e) => return RunEnd::Failed(e, again()),
        };
        let mut refreshed = false;
        loop {
            if !self.sync.borrow().is_online() {
                return RunEnd::Failed(
                    Error::new(ErrorKind::Offline, "the browser went offline"),
                    None,
                );
            }
            // Each batch's changes reach the app (and the other tabs) as soon as they are
            // committed, not when the round ends.
            let mut acked = 0;
            let end = self
                .engine
                .flush_round_emitting(&self.transport, &headers, &mut |r| {
                    acked += r.acked;
                    self.dispatch(r)
                })
                .await;
            // Credentials that worked for some requests and then expired (short-lived tokens
            // in a long queue) are renewed again: the last renewal cured the 401 before.
            if acked > 0 {
                refreshed = false;
            }
            match end {
                // A full quota may clear (the app deletes, the browser evicts): try again later.
                Err(e) if e.kind == ErrorKind::Quota => {
                    return RunEnd::Failed(e, Some(js_sys::Date::now() + 30_000.0))
                }
                Err(e) => return RunEnd::Failed(e, None),
                Ok(RoundEnd::Progress) => self.emit_status(),
                // A create that was out when the page went waits a few seconds for the server
                // to show it (`out_marks.rs`): the run sits that out, then looks again.
                Ok(RoundEnd::Held { until }) => {
                    self.emit_status();
                    crate::web::js::sleep(until - js_sys::Date::now()).await;
                }
                Ok(RoundEnd::Idle) => break,
                Ok(RoundEnd::Unauthorized) if self.get_headers.is_some() && !refreshed => {
                    refreshed = true;
                    headers = match self.refresh_headers(&headers).await {
                        Ok(h) => h,
                        Err(e) => return RunEnd::Failed(e, again()),
                    };
                }
                Ok(RoundEnd::Unauthorized) => {
                    let e = Error::answered(
                        401,
                        "the server refused the credentials (401, or a status in authStatuses); sync is paused",
                    );
                    return RunEnd::Failed(e, Some(js_sys::Date::now() + AUTH_PAUSE_MS));
                }
                Ok(RoundEnd::Offline) => {
                    return RunEnd::Failed(
                        Error::new(ErrorKind::Offline, "the browser is offline"),
                        None,
                    );
                }
                Ok(RoundEnd::Wait {
                    reason,
                    retry_at,
                    kind,
                    status,
                }) => {
                    let e = Error {
                        status,
                        ..Error::new(kind, reason)
                    };
                    // A mutation the server keeps failing must not keep the others' changes
                    // out: the reads still go (they never overwrite what waits to be sent).
                    if let Some(Err(e)) = self.pull_all(&mut headers, &mut refreshed).await {
                        if e.kind == ErrorKind::Offline {
                            return RunEnd::Failed(e, None);
                        }
                    }
                    return RunEnd::Failed(e, Some(retry_at));
                }
            }
        }
        if let Some(Err(e)) = self.pull_all(&mut headers, &mut refreshed).await {
            // Credentials fresh headers did not cure pause reads as they pause writes.
            let auth = e
                .status
                .is_some_and(|s| self.engine.config.is_auth_status(s));
            let wait = if auth { AUTH_PAUSE_MS } else { 5_000.0 };
            let retry = (e.kind != ErrorKind::Offline).then(|| js_sys::Date::now() + wait);
            return RunEnd::Failed(e, retry);
        }
        RunEnd::Done
    }

    /// Pulls every collection, when a pull is due (`pull_next`) and `pullAfterFlush` is on; one
    /// collection's failed read does not keep the others from being read. `None` when no pull
    /// was due; else the first error, if any (an offline one at once).
    async fn pull_all(
        self: &Rc<Self>,
        headers: &mut Vec<(String, String)>,
        refreshed: &mut bool,
    ) -> Option<Result<(), Error>> {
        let pull = std::mem::take(&mut self.sync.borrow_mut().pull_next);
        if !pull || !self.engine.config.pull_after_flush {
            return None;
        }
        let names: Vec<String> = self.engine.config.collections.keys().cloned().collect();
        let mut failed = None;
        for name in names {
            match self.pull_with(headers, refreshed, &name, false).await {
                Ok(report) => self.dispatch(report),
                Err(e) if e.kind == ErrorKind::Offline => return Some(Err(e)),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        Some(failed.map_or(Ok(()), Err))
    }

    /// Pulls collection `name` (`full`: everything, whatever the cursor); a read answered 401
    /// asks `getHeaders` again (once per run, as a flush does) and is tried again with what it
    /// gives.
    async fn pull_with(
        &self,
        headers: &mut Vec<(String, String)>,
        refreshed: &mut bool,
        name: &str,
        full: bool,
    ) -> Result<Report, Error> {
        let read = |headers: Vec<(String, String)>| async move {
            match full {
                true => self.engine.pull_full(&self.transport, &headers, name).await,
                false => self.engine.pull(&self.transport, &headers, name).await,
            }
        };
        let read = match read(headers.clone()).await {
            Err(e)
                if e.status
                    .is_some_and(|s| self.engine.config.is_auth_status(s))
                    && self.get_headers.is_some()
                    && !*refreshed =>
            {
                *refreshed = true;
                *headers = self.refresh_headers(headers).await?;
                read(headers.clone()).await
            }
            other => other,
        };
        if read.is_ok() {
            *refreshed = false;
        }
        read
    }

    /// `collection.pull()`; `full`: read everything, not the changes since the cursor.
    pub(crate) async fn pull(self: &Rc<Self>, name: &str, full: bool) -> Result<(), Error> {
        if !self.sync.borrow().is_online() {
            return Err(Error::new(ErrorKind::Offline, OFFLINE));
        }
        let mut headers = self.headers().await?;
        let report = self.pull_with(&mut headers, &mut false, name, full).await?;
        self.dispatch(report);
        Ok(())
    }
}
