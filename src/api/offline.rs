//! Whether the store may send: the browser's `online`/`offline` events, and the app's
//! `setOffline`, which holds for every tab of the store (calls that cross between tabs are
//! settled the same way in each: the later one stands).

use std::rc::Rc;

use super::ferry::Inner;

impl Inner {
    /// The browser's `online`/`offline` events, or the app's `setOffline` (`forced`).
    pub(crate) fn set_online(self: &Rc<Self>, online: bool, forced: bool) {
        let online = {
            let mut s = self.sync.borrow_mut();
            if forced {
                s.forced_offline = !online;
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
    /// taken unless a later one was taken already. Returns whether it was.
    pub(crate) fn choose_offline(self: &Rc<Self>, offline: bool, at: f64, tab: String) -> bool {
        {
            let mut s = self.sync.borrow_mut();
            let (last, by) = &s.offline_at;
            if (at, &tab) <= (*last, by) && s.offline_call.is_some() {
                return false;
            }
            s.offline_at = (at, tab);
        }
        self.set_online(!offline, true);
        true
    }
}
