//! Whether the store may send: the browser's `online`/`offline` events, and the app's
//! `setOffline`, which holds for every tab of the store (calls that cross between tabs are
//! settled the same way in each: the later one stands).

use std::rc::Rc;

use super::convert::to_js;
use super::ferry::Inner;

impl Inner {
    /// The app's `setOffline(offline)`: for every tab of the store, stamped later than any call
    /// this tab took (whatever the clocks: the app's latest word here).
    pub(crate) fn set_offline_everywhere(self: &Rc<Self>, offline: bool) {
        let (at, tab) = {
            let s = self.sync.borrow();
            (
                js_sys::Date::now().max(s.offline_at.0 + 1.0),
                s.tab_id.clone(),
            )
        };
        // The other tabs first: a `sync()` that follows must find the leader online.
        let body = serde_json::json!({ "offline": offline, "at": at, "tab": tab });
        self.tell_tabs("offline", &to_js(&body));
        self.choose_offline(offline, at, tab);
    }

    /// The browser's `online`/`offline` events, or the app's `setOffline` (`forced`).
    pub(crate) fn set_online(self: &Rc<Self>, online: bool, forced: bool) {
        let online = {
            let mut s = self.sync.borrow_mut();
            if forced {
                s.offline_call = Some(!online);
            } else {
                s.online = online;
            }
            let online = s.is_online();
            if online {
                s.pull_next = true;
                s.next_retry = None;
            }
            online
        };
        self.emit_status();
        if online && self.engine.config.auto_sync {
            self.kick();
        }
    }

    /// A `setOffline(offline)` of the store made at `at` by tab `tab` (here or in another tab):
    /// taken unless a later one was taken already.
    pub(crate) fn choose_offline(self: &Rc<Self>, offline: bool, at: f64, tab: String) {
        {
            let mut s = self.sync.borrow_mut();
            let (last, by) = &s.offline_at;
            if (at, &tab) <= (*last, by) && s.offline_call.is_some() {
                return;
            }
            s.offline_at = (at, tab);
        }
        self.set_online(!offline, true);
    }
}
