//! Several tabs on one store. One leads (holds the Web Lock) and is the only one that flushes;
//! the others send it their wish to sync, and every tab hears every change: local writes of
//! the others, and what the leader's syncs brought in. So no mutation is sent by two tabs, and
//! when the leader closes, the next tab in the lock's queue takes over at once.

use std::rc::Rc;

use js_sys::{Array, Function, Reflect};
use serde::Serialize;
use serde_json::json;
use wasm_bindgen::prelude::*;

use crate::core::{Error, ErrorKind};
use crate::web::js::FerryTabs;

use super::convert::{js_error, to_js};
use super::events::emit;
use super::ferry::Inner;

/// The names in `v`, when it is an array (a message's `from`).
fn names(v: &JsValue) -> Option<Vec<String>> {
    Array::is_array(v).then(|| {
        Array::from(v)
            .iter()
            .filter_map(|x| x.as_string())
            .collect()
    })
}

fn field(v: &JsValue, name: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

impl Inner {
    /// Joins the store's tabs (called once, at open).
    pub(crate) fn join_tabs(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |m: JsValue| {
            if let Some(inner) = weak.upgrade() {
                inner.on_tab_message(&m);
            }
        })
        .into_js_value();
        let weak = Rc::downgrade(self);
        let on_leader = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.became_leader();
            }
        })
        .into_js_value();
        let name = format!("ferry:{}", self.engine.config.name);
        let tabs = FerryTabs::new(
            &name,
            on_message.unchecked_ref(),
            on_leader.unchecked_ref(),
            &self.declared(),
        );
        tabs.post("hello", &JsValue::NULL);
        *self.tabs.borrow_mut() = Some(tabs);
    }

    /// The collections this tab declares, as a JS array (sent with every message).
    fn declared(&self) -> JsValue {
        let names = self.engine.config.collections.keys();
        names
            .map(|c| JsValue::from_str(c))
            .collect::<Array>()
            .into()
    }

    /// Whether a tab that declares `from` should lead instead of this one: it declares every
    /// collection this one does, and more. Only the leader sends, and it cannot send what it
    /// does not declare (an older page left open leading a newer one's new collection).
    fn outdone_by(&self, from: &JsValue) -> bool {
        let Some(from) = names(from) else {
            return false;
        };
        let own = &self.engine.config.collections;
        own.keys().all(|c| from.contains(c)) && from.iter().any(|c| !own.contains_key(c))
    }

    /// Whether this tab declares every collection of `from` and more.
    fn outdoes(&self, from: &JsValue) -> bool {
        let Some(from) = names(from) else {
            return false;
        };
        let own = &self.engine.config.collections;
        from.iter().all(|c| own.contains_key(c)) && own.keys().any(|c| !from.contains(c))
    }

    /// Gives the lead to the next tab in the lock's queue once the run in flight has ended (two
    /// leaders never send). If that tab is outdone too, the outdoing tab hears its `leader`
    /// message and says so again, until it leads. Only where Web Locks queue the tabs: without
    /// them every tab leads anyway.
    pub(crate) fn hand_over(&self) {
        let mut s = self.sync.borrow_mut();
        if !s.leader {
            return;
        }
        if s.running {
            s.hand_over = true;
            return;
        }
        s.hand_over = false;
        s.leader = false;
        drop([s.timer.take(), s.poll_timer.take()]);
        drop(s);
        if let Some(t) = self.tabs.borrow().as_ref() {
            t.requeue();
        }
    }

    /// Leaves the tabs (at close).
    pub(crate) fn leave_tabs(&self) {
        if let Some(t) = self.tabs.borrow_mut().take() {
            t.close();
        }
    }

    /// The database connection was taken away (another tab's upgrade, the browser): every call
    /// now fails with a `ClosedError` saying why, and this tab leaves the others, giving up the
    /// lead, so that a tab that can still write flushes.
    pub(crate) fn lost_storage(&self) {
        let why = self.engine.storage.closed_because();
        self.shut(why.unwrap_or("the store is closed"));
    }

    /// Stops this store, closed by the app or by losing its database (`why`): every call fails
    /// saying why, a round in flight sends nothing more, the lead and the listeners of the
    /// page's events go, and the `sync()` calls waiting here or in another tab for this one are
    /// rejected (no run will settle them now).
    pub(crate) fn shut(&self, why: &str) {
        self.engine.close_because(why);
        self.leave_tabs();
        for off in self.unlisten.borrow_mut().drain(..) {
            let _ = off.call0(&JsValue::NULL);
        }
        let waiters = {
            let mut s = self.sync.borrow_mut();
            s.leader = false;
            drop([s.timer.take(), s.poll_timer.take()]);
            let mut waiters = std::mem::take(&mut s.waiters);
            let remote = std::mem::take(&mut s.remote_waiters);
            waiters.extend(remote.into_iter().map(|(_, ok, fail)| (ok, fail)));
            waiters
        };
        let err = js_error(Error::new(ErrorKind::Closed, why));
        for (_, reject) in waiters {
            let _ = reject.call1(&JsValue::NULL, &err);
        }
        self.drop_headers_call(&err);
    }

    /// Sends a message to the other tabs.
    pub(crate) fn tell_tabs(&self, kind: &str, body: &JsValue) {
        if let Some(t) = self.tabs.borrow().as_ref() {
            t.post(kind, body);
        }
    }

    fn became_leader(self: &Rc<Self>) {
        let waiting = {
            let mut s = self.sync.borrow_mut();
            s.leader = true;
            // `sync()` calls this tab sent to the old leader are now its own to carry out.
            let remote = std::mem::take(&mut s.remote_waiters);
            s.waiters.extend(
                remote
                    .into_iter()
                    .map(|(_, resolve, reject)| (resolve, reject)),
            );
            !s.waiters.is_empty()
        };
        // Followers whose requests the old leader never answered ask again.
        self.tell_tabs("leader", &JsValue::NULL);
        self.emit_status();
        // What the old leader settled and could not tell (it went in between): told once, by
        // the tab that leads now (`core/sync/untold.rs`).
        self.tell_untold();
        if self.engine.config.auto_sync || waiting {
            self.sync.borrow_mut().pull_next = true;
            self.kick();
        }
    }

    fn on_tab_message(self: &Rc<Self>, m: &JsValue) {
        let body = field(m, "body");
        let shared = self.tabs.borrow().as_ref().is_some_and(|t| t.shared());
        let outdone = shared && self.sync.borrow().leader && self.outdone_by(&field(m, "from"));
        if outdone {
            self.hand_over();
            self.emit_status();
        }
        match field(m, "t").as_string().as_deref() {
            // Another tab wrote: its subscribers were told; ours are now, and the leader flushes.
            Some("changes") => {
                self.engine.retire_block();
                self.emit_each("change", &body);
                if self.sync.borrow().leader {
                    self.after_write();
                }
            }
            Some("report") => self.emit_report(&body),
            // `setOffline` is the store's, not one tab's: the leader sends for every tab.
            Some("offline") => match body.as_bool() {
                // From a build before the calls were stamped.
                Some(offline) => self.set_online(!offline, true),
                None => {
                    let offline = field(&body, "offline").as_bool() == Some(true);
                    let at = field(&body, "at").as_f64().unwrap_or(0.0);
                    let tab = field(&body, "tab").as_string().unwrap_or_default();
                    self.choose_offline(offline, at, tab);
                }
            },
            // A tab that opened after `setOffline(true)` hears that the store is offline, unless
            // its app chose since (a toggle restored at start): the later word stands.
            Some("hello") if self.sync.borrow().offline_call == Some(true) => {
                self.tell_tabs("still-offline", &JsValue::NULL)
            }
            Some("still-offline") if self.sync.borrow().offline_call.is_none() => {
                self.set_online(false, true)
            }
            // A tab that outdoes this one is not served: this one cannot send all it has. Its
            // requests wait in that tab, which carries them out once it leads.
            Some("kick") if self.sync.borrow().leader && !outdone => {
                let ids: Vec<String> = if Array::is_array(&field(&body, "ids")) {
                    Array::from(&field(&body, "ids"))
                        .iter()
                        .filter_map(|v| v.as_string())
                        .collect()
                } else {
                    Vec::new()
                };
                if !self.sync.borrow().is_online() {
                    // This tab cannot send (the app took it offline): say so, or the asking
                    // tab's `sync()` would wait for a run that never comes.
                    let body = json!({ "ids": ids, "error": { "name": "OfflineError", "message": "the leading tab is offline" } });
                    self.tell_tabs("done", &to_js(&body));
                    return;
                }
                {
                    let mut s = self.sync.borrow_mut();
                    s.asked |= !ids.is_empty() && s.running;
                    s.served.extend(ids);
                    s.pull_next = true;
                }
                self.kick();
            }
            // A new leader: ask it again for what the old one left unanswered.
            Some("leader") if !self.sync.borrow().leader => {
                let ids: Vec<String> = self
                    .sync
                    .borrow()
                    .remote_waiters
                    .iter()
                    .map(|(id, ..)| id.clone())
                    .collect();
                if !ids.is_empty() {
                    self.tell_tabs("kick", &to_js(&json!({ "ids": ids })));
                } else if self.outdoes(&field(m, "from")) {
                    // A new leader this tab outdoes: it says so (any message does), and the
                    // lead comes here once that leader's run ends.
                    self.tell_tabs("hello", &JsValue::NULL);
                }
            }
            // The leader's run ended: it settles the `sync()` calls of this tab that it served.
            Some("done") if !self.sync.borrow().leader => {
                let ids: Vec<String> = if Array::is_array(&field(&body, "ids")) {
                    Array::from(&field(&body, "ids"))
                        .iter()
                        .filter_map(|v| v.as_string())
                        .collect()
                } else {
                    Vec::new()
                };
                let waiters: Vec<(Function, Function)> = {
                    let mut s = self.sync.borrow_mut();
                    let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut s.remote_waiters)
                        .into_iter()
                        .partition(|(id, ..)| ids.contains(id));
                    s.remote_waiters = rest;
                    mine.into_iter()
                        .map(|(_, resolve, reject)| (resolve, reject))
                        .collect()
                };
                let error = field(&body, "error");
                for (resolve, reject) in waiters {
                    if error.is_object() {
                        let name = field(&error, "name").as_string().unwrap_or_default();
                        let kind = [
                            ErrorKind::Offline,
                            ErrorKind::Network,
                            ErrorKind::Storage,
                            ErrorKind::Protocol,
                        ]
                        .into_iter()
                        .find(|k| k.name() == name)
                        .unwrap_or(ErrorKind::Network);
                        let message = field(&error, "message").as_string().unwrap_or_default();
                        let _ = reject.call1(&JsValue::NULL, &js_error(Error::new(kind, message)));
                    } else {
                        let _ = resolve.call0(&JsValue::NULL);
                    }
                }
                self.emit_status();
            }
            _ => {}
        }
    }

    /// Emits a `kind` event for each item of a JS array (items carry their `collection`).
    pub(crate) fn emit_each(&self, kind: &str, list: &JsValue) {
        if !Array::is_array(list) {
            return;
        }
        for item in Array::from(list).iter() {
            let c = field(&item, "collection").as_string();
            emit(&self.listeners, kind, c.as_deref(), &item);
        }
    }

    /// Emits the events of a sync report (as JS): changes, id changes, rejections, conflicts.
    pub(crate) fn emit_report(&self, report: &JsValue) {
        self.emit_each("change", &field(report, "changes"));
        self.emit_each("idChange", &field(report, "ids"));
        self.emit_each("rejected", &field(report, "rejected"));
        self.emit_each("conflict", &field(report, "conflicts"));
    }

    /// Emits `value`'s events here and in the other tabs. Every write announces its changes, so
    /// this is on every write's path: one JSON text, parsed here only when this tab listens, and
    /// handed to the other tabs as it is.
    pub(crate) fn emit_everywhere<T: Serialize>(&self, kind: &str, value: &T) {
        let Ok(text) = serde_json::to_string(value) else {
            return;
        };
        let report = kind == "report";
        let kinds: &[&str] = if report {
            &["change", "idChange", "rejected", "conflict"]
        } else {
            &["change"]
        };
        if kinds.iter().any(|k| self.listeners.borrow().has(k)) {
            let js = js_sys::JSON::parse(&text).unwrap_or(JsValue::UNDEFINED);
            if report {
                self.emit_report(&js);
            } else {
                self.emit_each("change", &js);
            }
        }
        match self.tabs.borrow().as_ref() {
            Some(t) => t.post_text(kind, &text),
            // Closed meanwhile: a write that was in flight at `close()` committed all the
            // same, and the other tabs (the leader, which sends it) must hear of it.
            None => {
                let name = format!("ferry:{}", self.engine.config.name);
                // Without `from`: a tab that is gone asks nobody for the lead.
                FerryTabs::post_once(&name, kind, &text, &JsValue::NULL);
            }
        }
    }
}
