//! Many rows read by key at once, outside a prefetch (the rows under the ids a server has just
//! given out): one capped key range when there are many, since ids given out together are
//! usually neighbours, and a `get` each for those the range did not settle.

use std::collections::HashMap;

use serde_json::Value;

use super::part::Part;
use super::{Tx, RANGE_FROM};
use crate::core::error::Result;
use crate::core::record::is_ghost;
use crate::core::storage::{utf16_order, Key, Read, Table, Txn};

impl<T: Txn> Tx<T> {
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
