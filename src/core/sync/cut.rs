//! Lists cut without a word: a server that answers a bare array at a default limit (Sails'
//! blueprints at 30, FastAPI's tutorial at 100, tastypie's `max_limit` at 1000) gives a full
//! read that looks whole and is not. Applied, it removes every record past the cut from the
//! device, acknowledged creates included. So before a full read removes records, Ferry asks the
//! server for one or two of them by their own URL: one still there means the list was cut, and
//! the read is applied as part of the list (nothing removed, and the console says why).

use std::collections::HashSet;

use serde_json::Value;

use crate::core::clock::Env;
use crate::core::config::CollectionConfig;
use crate::core::engine::Engine;
use crate::core::error::{Error, Result};
use crate::core::record::id_key;
use crate::core::storage::{Key, Storage, Table, Txn};

use super::classify::record_of;
use super::http::{record_url, HttpRequest, Transport};
use super::pull::{shown, Page};

/// How many of the records a read would remove are asked for: the first and the last in key
/// order, so that a cut at either end of the server's order shows.
const ASKED: usize = 2;

impl<S: Storage, E: Env> Engine<S, E> {
    /// Marks `page`, a full read of `cfg`, as part of the list when a record it would remove is
    /// still on the server. Only when this device holds more records than the read gave can it
    /// remove any, so a read that gives as many costs nothing more; nor does one whose length
    /// is no limit's.
    pub(super) async fn check_cut<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        cfg: &CollectionConfig,
        page: &mut Page,
        requests: &mut usize,
    ) -> Result<()> {
        // A cut list holds exactly its limit, and limits are round numbers (10, 20, 25, 30,
        // 50, 100, 1000): a list of any other length is taken at its word, which spares a
        // filtered view (`?done=false`, whose records' own URLs still show those that left
        // it) from being taken for a cut one.
        let entries = page.records.len() + page.others;
        if page.partial.is_some() || entries == 0 || (entries % 10 != 0 && entries % 25 != 0) {
            return Ok(());
        }
        let listed: HashSet<String> = page
            .records
            .iter()
            .filter_map(|r| id_key(r.get(&cfg.id_property)?).ok())
            .collect();
        let tx = self.begin(false).await?;
        if tx.t.count(Table::Records(&cfg.name)).await? <= listed.len() as u64 {
            return Ok(());
        }
        let pending: HashSet<String> = tx
            .outbox()
            .await?
            .into_iter()
            .filter(|e| e.c == cfg.name)
            .map(|e| e.r)
            .collect();
        let gone: Vec<String> =
            tx.t.get_all(Table::Records(&cfg.name))
                .await?
                .into_iter()
                .filter_map(|(k, _)| match k {
                    Key::Str(k) if !listed.contains(&k) && !pending.contains(&k) => Some(k),
                    _ => None,
                })
                .collect();
        drop(tx);
        let mut asked: Vec<&String> = gone.iter().take(1).chain(gone.last()).collect();
        asked.dedup();
        for key in asked.into_iter().take(ASKED) {
            let url = record_url(&cfg.url, key);
            *requests += 1;
            let req = HttpRequest {
                method: "GET".into(),
                url: url.clone(),
                headers: headers.to_vec(),
                body: None,
            };
            let still = match transport.send(req).await.map_err(Error::from) {
                // Unread, the removal is not proven: kept until a read can tell.
                Err(e) => Some(format!("whether `{key}` is gone could not be read ({e})")),
                Ok(res) if (200..300).contains(&res.status) => {
                    let rec = record_of(cfg, &res).ok().flatten();
                    rec.filter(|r| {
                        r.get(&cfg.id_property)
                            .and_then(|v| id_key(v).ok())
                            .as_ref()
                            == Some(key)
                            && r.get("deleted") != Some(&Value::Bool(true))
                    })
                    .map(|_| {
                        format!(
                            "it leaves out `{key}`, which {} still shows: the server cuts its \
                             list (a default limit?); raise the limit, or have the list say \
                             that it pages",
                            shown(&url)
                        )
                    })
                }
                Ok(_) => None,
            };
            if still.is_some() {
                page.partial = still;
                return Ok(());
            }
        }
        Ok(())
    }
}
