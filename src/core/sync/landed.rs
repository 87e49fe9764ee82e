//! Creates about to be sent again after a send whose answer never came (or could not be read).
//! That send may have reached the server, and a server that ignores `Idempotency-Key` (it is optional,
//! PROTOCOL.md section 3) would store it twice. So the collection is read first (since the last
//! pull's cursor, which does not move past a create of ours still waiting for its answer), and
//! a record carrying the create's client id is its acknowledgement: nothing is sent.

use std::collections::HashMap;

use serde_json::Value;

use crate::core::clock::Env;
use crate::core::config::CollectionConfig;
use crate::core::engine::Engine;
use crate::core::error::{ErrorKind, Result};
use crate::core::mutation::{Entry, Kind};
use crate::core::record::Record;
use crate::core::storage::Storage;

use super::classify::{version_field, Verdict};
use super::http::Transport;
use super::out_marks::OutMark;
use super::page::Page;
use super::processing::{sends_under_key, RETRIED_READS};
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
        // The marks of requests out when the page went, read once if some create is not found.
        let mut marks: Option<Vec<OutMark>> = None;
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
                let recs = self.read_since_pull(transport, headers, cfg, report).await;
                let recs = recs.map(|page| (page.records, page.partial.is_some()));
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
                // A collection that cannot be listed (no GET route): looking will never work,
                // and waiting for it would hold the create for good. It goes, and meets what
                // it meets. A 2xx that is no list (a captive portal's page) fails for now, as
                // the pulls do: the create waits, or a server without keys stores it twice.
                Err(err)
                    if err.status.is_some_and(|s| {
                        (400..500).contains(&s) && !matches!(s, 408 | 425 | 429)
                    }) =>
                {
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
            let landed = recs.iter().find(|r| carries_client_id(cfg, r, cid));
            if let Some(r) = landed {
                found.resize_with(picked.len(), || None);
                found[i] = Some(Verdict::Ack(Some(r.clone()), version_field(cfg, r)));
                continue;
            }
            if marks.is_none() {
                marks = Some(self.out_marks());
            }
            let until = self.held_until(marks.as_deref().unwrap_or_default(), e.seq);
            if let Some(until) = until {
                // Its request was out when the page went, moments ago: the server may still be
                // storing it. Looked for again at `until`, then sent if still not there.
                found.resize_with(picked.len(), || None);
                found[i] = Some(Verdict::Held {
                    reason: "its answer was lost moments ago, and the server does not show it \
                             yet: looked for again before it is sent"
                        .into(),
                    until,
                });
            } else if partial {
                self.warn_partial_lookup(&e.c);
            }
        }
        found
    }

    /// The verdict on create `e`, refused (`refused`) with an answer that names its client id
    /// field (`{"client_id": ["has already been taken"]}`: a uniqueness check on it, as Rails'
    /// `validates :client_id, uniqueness: true` or Django's `unique=True` make). The create may
    /// be stored already: sent twice (a browser sends a POST again by itself when a kept-alive
    /// connection closes under it), its first copy stored. The collection is read since the
    /// last pull's cursor, as for a create sent again: a record with the create's client id is
    /// its acknowledgement. A read that cannot be made for now makes it wait, a few rounds at
    /// most; not found, the refusal stands (a refusal drops the changes queued behind the
    /// create, which the server's record would then never get).
    pub(super) async fn refused_as_taken<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        e: &Entry,
        refused: Verdict,
        report: &mut Report,
    ) -> Result<Verdict> {
        let cfg = self.collection(&e.c)?;
        let field = cfg.client_id_property.as_str();
        let sent = e.sent.as_ref().and_then(|s| s.body.as_ref());
        let (Some(cid), Verdict::Rejected { body, .. }) =
            (sent.and_then(|b| b.get(field)), &refused)
        else {
            return Ok(refused);
        };
        // A JSON answer is looked into, so that one echoing the record sent does not count; a
        // text one (a database's `duplicate key ... "todos_client_id_key"`) names the field
        // where it holds its name. JSON cut short (a long echo, kept in part) is no such text.
        let answer = body.trim_start_matches('\u{feff}').trim();
        let names = body.contains(field)
            && match super::json_body::parse::<Value>(answer) {
                Ok(a) => names_field(&a, field, cid, 0),
                Err(_) => !answer.starts_with(['{', '[']),
            };
        if !names {
            return Ok(refused);
        }
        Ok(
            match self.read_since_pull(transport, headers, cfg, report).await {
                Ok(page) => match page.records.iter().find(|r| carries_client_id(cfg, r, cid)) {
                    Some(r) => Verdict::Ack(Some(r.clone()), version_field(cfg, r)),
                    None => {
                        if page.partial.is_some() {
                            self.warn_partial_lookup(&e.c);
                        }
                        refused
                    }
                },
                Err(err) if err.status.is_some_and(|s| cfg.is_auth_status(s)) => {
                    Verdict::Unauthorized
                }
                // A collection that cannot be listed (no GET route): looking will never work.
                Err(err)
                    if err.status.is_some_and(|s| {
                        (400..500).contains(&s) && !matches!(s, 408 | 425 | 429)
                    }) =>
                {
                    refused
                }
                // Offline: it waits to be online. No answer (a timeout), a 5xx or a page that is no
                // list: a few rounds (then the refusal stands).
                Err(err)
                    if err.kind == ErrorKind::Offline || sends_under_key(e) <= RETRIED_READS =>
                {
                    Verdict::Transient {
                        reason: format!(
                            "it was refused for its client id, and whether the server stored it \
                     could not be read: {}",
                            err.message
                        ),
                        retry_after: None,
                        kind: err.kind,
                        // No status of the create's own: it may be stored, so the next round
                        // looks for it before sending it again (`find_landed`).
                        status: None,
                    }
                }
                Err(_) => refused,
            },
        )
    }

    /// The collection as read since the last pull's cursor, which does not move past a create
    /// of ours still waiting for its answer: where a create sent before would show.
    async fn read_since_pull<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        cfg: &CollectionConfig,
        report: &mut Report,
    ) -> Result<Page> {
        let since = self.pull_marks(&cfg.name).await.ok().and_then(|(c, _)| c);
        let mut n = 0;
        let read = read_page(transport, headers, cfg, since, &mut n).await;
        report.requests += n;
        read.map(|(page, _)| page)
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

    /// Says once per collection that `records` (a read of it) hold one client id twice: a
    /// create stored more than once (a server that ignores `Idempotency-Key`, whose copy the
    /// lookup could not see). The copies are the server's records; nothing tells which to keep.
    pub(super) fn warn_if_stored_twice(
        &self,
        cfg: &crate::core::config::CollectionConfig,
        records: &[Record],
    ) {
        // By client id, the record's id: one record read twice (offset paging over a list
        // that changed between pages) is not two.
        let mut seen: HashMap<&str, &Value> = HashMap::new();
        let twice = records.iter().find_map(|r| {
            // Ferry's own client ids only: the field's name may also be an app's (a customer
            // id shared by many records).
            let cid = r.get(&cfg.client_id_property)?.as_str()?;
            if !cid.starts_with(crate::core::local::TEMP_PREFIX) {
                return None;
            }
            let id = r.get(&cfg.id_property)?;
            let first = *seen.entry(cid).or_insert(id);
            (first != id).then_some(cid)
        });
        let Some(cid) = twice else {
            return;
        };
        self.warn_once(format!("stored twice:{}", cfg.name), || {
            format!(
                "the server holds more than one record of `{}` with the client id `{cid}`: a \
                 create was stored more than once (a server that ignores Idempotency-Key, \
                 with an answer lost or late). Check the copies on the server, and honour \
                 Idempotency-Key there (PROTOCOL.md section 3).",
                cfg.name
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
                 lost cannot be found on the server by it, and is stored again at each retry \
                 unless the server honours Idempotency-Key. Store the field with the record \
                 (PROTOCOL.md section 3).",
                cfg.name
            )
        });
    }
}

/// Whether `r`, listed by the server, is the record a create with client id `cid` stored.
pub(super) fn carries_client_id(cfg: &CollectionConfig, r: &Record, cid: &Value) -> bool {
    r.get(&cfg.client_id_property) == Some(cid)
        && r.get("deleted") != Some(&Value::Bool(true))
        && r.contains_key(&cfg.id_property)
}

/// Whether answer `v` names field `field`: as a key, or in a string (a message, FastAPI's
/// `loc`), other than as the create's own client id `cid` echoed back (an answer that echoes
/// the record sent, as FastAPI's `input` or a Sencha server's `data` do, holds `field: cid`).
fn names_field(v: &Value, field: &str, cid: &Value, depth: u8) -> bool {
    match v {
        _ if depth > 8 => false,
        Value::String(s) => s.contains(field),
        Value::Array(a) => a.iter().any(|x| names_field(x, field, cid, depth + 1)),
        Value::Object(m) => m
            .iter()
            .filter(|(_, x)| *x != cid)
            .any(|(k, x)| k == field || names_field(x, field, cid, depth + 1)),
        _ => false,
    }
}
