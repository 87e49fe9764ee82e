//! Many rows read by key at once, outside a prefetch (the rows under the ids a server has just
//! given out): one capped key range when there are many, since ids given out together are
//! usually neighbours, and a `get` each for those the range did not settle. And a row removed,
//! with or without its ghost.

use std::collections::HashMap;

use serde_json::Value;

use super::part::Part;
use super::{bucket_key, Tx, RANGE_FROM};
use crate::core::error::Result;
use crate::core::record::{ghost, is_ghost};
use crate::core::storage::{utf16_order, Key, Read, Table, Txn};

impl<T: Txn> Tx<T> {
    /// Removes a row, leaving a [`ghost`] under its key: the key may still be in use (a pending
    /// delete, an alias), which a create with the app's id must find without a read. Ferry's own
    /// temporary ids get none: such a create reads their aliases (`quick.rs`), and a sync round
    /// moves a thousand of them at a time.
    pub fn delete_row(&self, c: &str, key: &str) -> Result<()> {
        if bucket_key(c, key).is_some() {
            return self.drop_row(c, key);
        }
        if let Some(k) = self.known.borrow_mut().as_mut().filter(|k| k.c == c) {
            k.gone.retain(|g| g != key);
        }
        self.t.put(Table::Records(c), &Key::str(key), &ghost())?;
        self.know_row(c, key, None);
        Ok(())
    }

    /// Removes a row, ghost and all: for a key nothing is pending under and no alias names.
    pub fn drop_row(&self, c: &str, key: &str) -> Result<()> {
        let gone = self.known.borrow_mut().as_mut().is_some_and(|k| {
            let at = k.gone.iter().position(|g| g == key).filter(|_| k.c == c);
            at.map(|i| k.gone.swap_remove(i)).is_some()
        });
        if !gone {
            self.t.delete(Table::Records(c), &Key::str(key))?;
        }
        self.know_row(c, key, None);
        Ok(())
    }

    /// The stored rows of collection `c` under `keys`, in their order (`None` where there is
    /// none), read straight from storage.
    pub async fn read_rows(&self, c: &str, keys: &[String]) -> Result<Vec<Option<Value>>> {
        let mut found: HashMap<&str, Option<Value>> = HashMap::new();
        let mut left: Vec<&str> = keys.iter().map(String::as_str).collect();
        left.sort_unstable_by(|a, b| utf16_order(a, b));
        left.dedup();
        if left.len() >= RANGE_FROM {
            let got = self.t.read_many(&[Part::Rows.range(c, &left)]).await?;
            let got = got.into_iter().next().unwrap_or_default();
            // A range cut at its limit may stop before some of the keys.
            let whole = got.len() < Part::Rows.limit(left.len());
            for (k, v) in got {
                if let Key::Str(k) = k {
                    if let Ok(i) = left.binary_search_by(|x| utf16_order(x, &k)) {
                        found.insert(left[i], Some(v));
                    }
                }
            }
            if whole {
                for k in &left {
                    found.entry(k).or_insert(None);
                }
            }
            left.retain(|k| !found.contains_key(k));
        }
        if !left.is_empty() {
            let reads: Vec<Read> = left
                .iter()
                .map(|k| Read::Get(Table::Records(c), Key::str(*k)))
                .collect();
            let answers = self.t.read_many(&reads).await?;
            for (k, got) in left.iter().zip(answers) {
                found.insert(k, got.into_iter().next().map(|(_, v)| v));
            }
        }
        // A ghost is no row.
        Ok(keys
            .iter()
            .map(|k| found.get(k.as_str()).cloned().flatten())
            .map(|v| v.filter(|v| !is_ghost(v)))
            .collect())
    }
}
