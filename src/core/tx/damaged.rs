//! Outbox entries something else than Ferry wrote (another page, a hand edit): left out of what
//! reads answer, and moved aside by the next pick, so one damaged entry neither stops the queue
//! nor hides the rest of it from the app.

use serde_json::Value;

use super::{decode_entry, Tx};
use crate::core::error::Result;
use crate::core::mutation::Entry;
use crate::core::storage::{Key, Table, Txn};

impl<T: Txn> Tx<T> {
    /// Decodes stored entries, without those deleted at commit. One that cannot be decoded is
    /// left out (and kept for [`Tx::set_aside_damaged`]): one damaged entry must not stop the
    /// queue, nor hide it from the app.
    pub(super) fn entries(&self, rows: Vec<(Key, Value)>) -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            match decode_entry((k.clone(), v.clone())) {
                Ok(e) if self.doomed(e.seq) => {}
                Ok(e) => out.push(e),
                Err(_) => self.damaged.borrow_mut().push((k, v)),
            }
        }
        Ok(out)
    }

    /// Moves the outbox entries that reads found damaged out of the outbox, into the state
    /// table under `damaged:outbox:<key>` as they were, and says what was moved.
    pub fn set_aside_damaged(&self) -> Result<Vec<String>> {
        let damaged = std::mem::take(&mut *self.damaged.borrow_mut());
        let mut said = Vec::with_capacity(damaged.len());
        for (k, v) in damaged {
            let name = match &k {
                Key::Num(n) => n.to_string(),
                other => format!("{other:?}"),
            };
            let aside = Key::Str(format!("damaged:outbox:{name}"));
            self.t.put(Table::State, &aside, &v)?;
            self.t.delete(Table::Outbox, &k)?;
            said.push(format!(
                "outbox entry {name} could not be read (written by something else than Ferry?); \
                 it was moved aside to the `state` store under {aside:?}, and the rest of the \
                 queue goes on"
            ));
        }
        Ok(said)
    }
}
