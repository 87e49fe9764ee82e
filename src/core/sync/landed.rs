//! Creates about to be sent again after a send whose answer never came (or could not be read).
//! That send may have reached the server, and a server that ignores `Idempotency-Key` (it is optional,
//! PROTOCOL.md section 3) would store it twice. So the collection is read first (since the last
//! pull's cursor, which does not move past a create of ours still waiting for its answer), and
//! a record carrying the create's client id is its acknowledgement: nothing is sent.

use std::collections::HashMap;

use serde_json::Value;

use crate::core::clock::Env;
use crate::core::engine::Engine;
use crate::core::error::{ErrorKind, Result};
use crate::core::mutation::{Entry, Kind};
use crate::core::record::Record;
use crate::core::storage::Storage;

use super::classify::{version_field, Verdict};
use super::http::Transport;
use super::pull::read_page;
use super::report::Report;

impl<S: Storage, E: Env> Engine<S, E> {
    /// For each of `picked`, the acknowledgement found on the server for a create sent before:
    /// one read per collection, only when some create is sent again. Empty when none is; a
    /// read that fails finds nothing (the create is then sent, and meets what it meets).
    pub(super) async fn find_landed<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        picked: &[Entry],
        report: &mut Report,
    ) -> Vec<Option<Verdict>> {
        let mut found: Vec<Option<Verdict>> = Vec::new();
        // Per collection: its records, and whether the read may hold part of the list only.
        let mut read: HashMap<String, Result<(Vec<Record>, bool)>> = HashMap::new();
        // Creates not found whose send a reload cut off lately, with whether the list was
        // partial; and those cut-off sends (by when they left) of which a create was found.
        let mut not_yet: Vec<(usize, bool)> = Vec::new();
        let mut stored_sends: Vec<u64> = Vec::new();
        for (i, e) in picked.iter().enumerate() {
            if e.kind != Kind::Create || !e.unsure {
                continue;
            }
            let Ok(cfg) = self.collection(&e.c) else {
                continue;
            };
            let sent = e.sent.as_ref().and_then(|s| s.body.as_ref());
            let Some(cid) = sent.and_then(|b| b.get(&cfg.client_id_property)) else {
                continue;
            };
            if !read.contains_key(&e.c) {
                let since = self.pull_marks(&e.c).await.ok().and_then(|(c, _)| c);
                let mut n = 0;
                let recs = read_page(transport, headers, cfg, since, &mut n).await;
                report.requests += n;
                let recs = recs.map(|(page, _)| (page.records, page.partial.is_some()));
                if let Ok((list, _)) = &recs {
                    self.warn_if_not_stored(cfg, list);
                }
                read.insert(e.c.clone(), recs);
            }
            let (recs, partial) = match &read[&e.c] {
                Ok((recs, partial)) => (recs, *partial),
                // Offline: the send says so. Else, sent again unseen it could be stored twice:
                // it waits for a round that can look.
                Err(err) if err.kind == ErrorKind::Offline => continue,
                Err(err) if err.status.is_some_and(|s| cfg.is_auth_status(s)) => {
                    found.resize_with(picked.len(), || None);
                    found[i] = Some(Verdict::Unauthorized);
                    continue;
                }
                // A collection that cannot be listed (no GET route, or a page that is not a
                // list): looking will never work, and waiting for it would hold the create for
                // good. It goes, and meets what it meets.
                Err(err)
                    if err
                        .status
                        .is_some_and(|s| s < 500 && !matches!(s, 408 | 425 | 429)) =>
                {
                    if self.lately_cut_off(e) {
                        not_yet.push((i, false));
                    }
                    continue;
                }
                Err(err) => {
                    found.resize_with(picked.len(), || None);
                    found[i] = Some(Verdict::Transient {
                        reason: format!(
                            "its answer was lost, and whether the server stored it could not be \
                             read: {}",
                            err.message
                        ),
                        retry_after: None,
                        kind: err.kind,
                        status: err.status,
                    });
                    continue;
                }
            };
            let landed = recs.iter().find(|r| {
                r.get(&cfg.client_id_property) == Some(cid)
                    && r.get("deleted") != Some(&Value::Bool(true))
                    && r.contains_key(&cfg.id_property)
            });
            if let Some(r) = landed {
                found.resize_with(picked.len(), || None);
                found[i] = Some(Verdict::Ack(Some(r.clone()), version_field(cfg, r)));
                stored_sends.extend(e.lost_at.map(f64::to_bits));
            } else if self.lately_cut_off(e) {
                not_yet.push((i, partial));
            } else if partial {
                self.warn_partial_lookup(&e.c);
            }
        }
        // A round's requests leave one after another, so of the creates a reload cut off,
        // only those of the request that was out can still be in the server's hands: the first
        // ones not found (as many as a request holds). When the server has stored one of that
        // round, those after it are taken for never sent (the tab died while an answer was on
        // its way). The rest go.
        let unit = match &self.config.batch_url {
            Some(_) if !self.batch_off.get() => {
                self.batch_cap.get().clamp(1, self.config.batch_size)
            }
            _ => 1,
        };
        let mut held: HashMap<u64, usize> = HashMap::new();
        for (i, partial) in not_yet {
            let send = picked[i].lost_at.map_or(0, f64::to_bits);
            let n = held.entry(send).or_default();
            if stored_sends.contains(&send) || *n >= unit {
                if partial {
                    self.warn_partial_lookup(&picked[i].c);
                }
                continue;
            }
            *n += 1;
            found.resize_with(picked.len(), || None);
            found[i] = Some(Verdict::Transient {
                reason: "its send was cut off by a reload and it is not on the server yet: the \
                         server may still be storing it, so it waits before it is sent again"
                    .into(),
                retry_after: None,
                kind: ErrorKind::Network,
                status: None,
            });
        }
        found
    }

    /// Says once per collection that a lost create was not found in a list that may be partial.
    fn warn_partial_lookup(&self, c: &str) {
        // Not on the part of the list that could be read: no proof it never landed. It goes
        // (held, it would wait for good on such a server).
        self.warn_once(format!("partial lookup:{c}"), || {
            format!(
                "a create in `{c}` whose answer was lost was looked for in a list that may be \
                 part of the collection only; not found there, it is sent again and may be \
                 stored twice"
            )
        });
    }

    /// Says once per collection that the list shows no record with the client id field: the
    /// server does not store it (tastypie echoes what was posted in a create's answer, stored
    /// or not, so the answer alone cannot tell), and lost creates will not be found by it.
    fn warn_if_not_stored(&self, cfg: &crate::core::config::CollectionConfig, list: &[Record]) {
        let field = &cfg.client_id_property;
        if list.is_empty() || list.iter().any(|r| r.contains_key(field)) {
            return;
        }
        self.warn_once(format!("client id:{}", cfg.name), || {
            format!(
                "the server lists `{}` without the `{field}` field: a create whose answer is \
                 lost cannot be found on the server by it, and is stored twice unless the \
                 server honours Idempotency-Key. Store the field with the record (PROTOCOL.md \
                 section 3).",
                cfg.name
            )
        });
    }

    /// Whether `e` is a create whose send a reload cut off less than `timeoutMs` ago: a slow
    /// handler may still be storing it, after the page that sent it is gone. Looked for again at
    /// each retry; once the time a request is given has passed, it is sent (`Idempotency-Key`
    /// then covers a server that honours it).
    fn lately_cut_off(&self, e: &Entry) -> bool {
        let Some(left) = e.lost_at else {
            return false;
        };
        let timeout = f64::from(self.config.timeout_ms);
        // A clock set back across the reload gives a negative age: within one timeout, the
        // send may still be out; further back, the mark says nothing.
        (-timeout..timeout).contains(&(self.env.now_ms() - left))
    }
}
