//! Lists cut without a word: a server that answers a bare array at a default limit (Sails'
//! blueprints at 30, FastAPI's tutorial at 100, tastypie's `max_limit` at 1000) gives a full
//! read that looks whole and is not. Applied, it removes every record past the cut from the
//! device, acknowledged creates included. So before a full read removes records, Ferry asks the
//! server for a few of them by their own URL: one still there means the list was cut, and the
//! read is applied as part of the list (nothing removed, and the console says why).

use std::cmp::Ordering;
use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::core::clock::Env;
use crate::core::config::CollectionConfig;
use crate::core::engine::Engine;
use crate::core::error::{Error, Result};
use crate::core::record::{id_key, is_ghost};
use crate::core::storage::{Key, Storage, Table, Txn};

use super::classify::record_of;
use super::flush::join;
use super::http::{record_url, Transport};
use super::page::{shown, Page};
use super::pull::get_request;

/// How many of the records a read would remove are asked for, at most: the highest and the
/// lowest id (a list cut at its limit loses one end of the server's order) and the middle one.
/// Records deleted on the server answer 404, so all of them gone lets the removals stand.
const ASKED: usize = 3;

impl<S: Storage, E: Env> Engine<S, E> {
    /// Marks `page`, a full read of `cfg`, as part of the list when a record it would remove is
    /// still on the server. A read that removes nothing costs no request; nor does one whose
    /// length is no limit's.
    pub(super) async fn check_cut<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        cfg: &CollectionConfig,
        page: &mut Page,
        requests: &mut usize,
    ) -> Result<()> {
        if page.partial.is_some() || !limit_length(page.records.len() + page.others) {
            return Ok(());
        }
        let listed: HashSet<String> = page
            .records
            .iter()
            .filter_map(|r| id_key(r.get(&cfg.id_property)?).ok())
            .collect();
        // The outbox and the rows in one round trip.
        let tx = self.begin(false).await?;
        let (outbox, rows) = join(tx.outbox(), tx.t.get_all(Table::Records(&cfg.name))).await;
        let pending: HashSet<String> = outbox?
            .into_iter()
            .filter(|e| e.c == cfg.name)
            .map(|e| e.r)
            .collect();
        let mut gone: Vec<String> = rows?
            .into_iter()
            .filter_map(|(k, v)| match k {
                Key::Str(k) if !listed.contains(&k) && !pending.contains(&k) && !is_ghost(&v) => {
                    Some(k)
                }
                _ => None,
            })
            .collect();
        drop(tx);
        gone.sort_by(|a, b| id_order(a, b));
        for key in sample(&gone) {
            let url = record_url(&cfg.url, key);
            *requests += 1;
            let req = get_request(&url, headers);
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
                            && !soft_deleted(r)
                            && in_view(&cfg.url, r)
                    })
                    .map(|_| {
                        format!(
                            "it leaves out `{key}`, which {} still shows: the server cuts its \
                             list (a default limit?), or its record URL shows records its list \
                             leaves out; raise the limit, or have the list say that it pages",
                            shown(&url)
                        )
                    })
                }
                // Only a 404 or a 410 says the record is gone; a refusal, a rate limit or a
                // server error says nothing, and taken for one it would lose live records.
                Ok(res) if matches!(res.status, 404 | 410) => None,
                Ok(res) => Some(format!(
                    "whether `{key}` is gone could not be read ({} answered {})",
                    shown(&url),
                    res.status
                )),
            };
            if still.is_some() {
                page.partial = still;
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Whether a list of `entries` has a limit's length: a cut list holds exactly its limit, and
/// limits are round numbers (10, 20, 25, 30, 50, 100, 1000). A list of any other length is
/// taken at its word.
fn limit_length(entries: usize) -> bool {
    entries > 0 && (entries % 10 == 0 || entries % 25 == 0)
}

/// Whether record `r` may still be in the view collection URL `url` filters (`?done=false`):
/// one that has plainly left it shows at its record URL (which carries the query, and whose
/// route may ignore it) all the same. Only a boolean or a number the record holds, against a
/// parameter of its name that reads as one, is decisive; a repeated parameter is any of its
/// values. Text is matched in too many ways by servers (case, prefixes, encodings) to tell, and
/// parameters that are no field of the record (`limit`, a JSON `filter`) say nothing.
fn in_view(url: &str, r: &Map<String, Value>) -> bool {
    let Some((_, query)) = url.split_once('?') else {
        return true;
    };
    // Paging and ordering parameters filter nothing, whatever fields the records have.
    const NOT_FILTERS: [&str; 14] = [
        "page",
        "_page",
        "per_page",
        "page_size",
        "limit",
        "_limit",
        "offset",
        "skip",
        "$skip",
        "$limit",
        "sort",
        "_sort",
        "order",
        "_order",
    ];
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .filter(|(k, _)| !NOT_FILTERS.contains(k))
        .collect();
    let outside = |v: &str, field: &Value| match field {
        Value::Bool(b) => match v {
            "true" | "1" => !*b,
            "false" | "0" => *b,
            _ => false,
        },
        // serde_json's number parser, not `str::parse::<f64>` (whose code would add ~15 KB).
        Value::Number(n) => match serde_json::from_str::<Value>(v) {
            Ok(Value::Number(x)) => x.as_f64() != n.as_f64(),
            _ => false,
        },
        _ => false,
    };
    !params.iter().any(|(k, _)| {
        r.get(*k).is_some_and(|field| {
            params
                .iter()
                .filter(|(k2, _)| k2 == k)
                .all(|(_, v)| outside(v, field))
        })
    })
}

/// Ids in the order a server sorts them: numbers by value ("9" before "10"), the rest as text.
fn id_order(a: &str, b: &str) -> Ordering {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// The ids asked for, of `sorted`: the last, the first, the middle one.
fn sample(sorted: &[String]) -> Vec<&String> {
    let mut asked: Vec<&String> = Vec::with_capacity(ASKED);
    for i in [sorted.len().wrapping_sub(1), 0, sorted.len() / 2] {
        if let Some(k) = sorted.get(i) {
            if !asked.contains(&k) {
                asked.push(k);
            }
        }
    }
    asked
}

/// A record its own URL still shows, marked deleted (`deleted: true`, a `deletedAt` time, as
/// soft-deleting ORMs keep them).
fn soft_deleted(r: &Map<String, Value>) -> bool {
    // A flag: `true`, a number not 0, or its text ("1", "true"; PHP's PDO gives "0" and "1").
    let flag = |k: &str| match r.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => matches!(s.trim(), "1" | "true" | "TRUE" | "True"),
        _ => false,
    };
    // A time: set, and not MySQL's zero date.
    let time = |k: &str| match r.get(k) {
        Some(Value::String(s)) => !matches!(s.trim(), "" | "0") && !s.starts_with("0000"),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        _ => false,
    };
    ["deleted", "isDeleted", "is_deleted"].into_iter().any(flag)
        || ["deletedAt", "deleted_at"].into_iter().any(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_are_sampled_by_value() {
        let mut ids: Vec<String> = (1..=120).map(|i| i.to_string()).collect();
        ids.sort_by(|a, b| id_order(a, b));
        assert_eq!(sample(&ids), ["120", "1", "61"]);
        let one = vec!["x".to_string()];
        assert_eq!(sample(&one), ["x"]);
        assert!(sample(&[]).is_empty());
    }

    #[test]
    fn soft_deletes_are_read_by_their_usual_marks() {
        let rec = |v: Value| v.as_object().cloned().unwrap();
        assert!(soft_deleted(&rec(
            serde_json::json!({"deletedAt": "2026-01-01"})
        )));
        assert!(soft_deleted(&rec(serde_json::json!({"deleted": true}))));
        assert!(!soft_deleted(&rec(serde_json::json!({"deletedAt": null}))));
        assert!(!soft_deleted(&rec(
            serde_json::json!({"is_deleted": false})
        )));
        assert!(!soft_deleted(&rec(serde_json::json!({"deleted": 0}))));
        for live in [
            serde_json::json!({"is_deleted": "0"}),
            serde_json::json!({"deleted": "false"}),
            serde_json::json!({"deletedAt": "0000-00-00 00:00:00"}),
            serde_json::json!({"deleted_at": "0"}),
        ] {
            assert!(!soft_deleted(&rec(live.clone())), "{live}");
        }
        assert!(soft_deleted(&rec(serde_json::json!({"is_deleted": "1"}))));
    }

    #[test]
    fn a_record_outside_a_filtered_view_is_not_in_it() {
        let rec = |v: Value| v.as_object().cloned().unwrap();
        let done = rec(serde_json::json!({"id": 1, "done": true, "tag": "a"}));
        assert!(!in_view("/api/todo?done=false", &done));
        assert!(in_view("/api/todo?done=true&tag=a", &done));
        assert!(
            in_view("/api/todo?limit=1000", &done),
            "no field of the record"
        );
        assert!(in_view("/api/todo", &done));
        assert!(!in_view("/api/todo?done=0", &done));
        // Text says nothing; a repeated parameter is any of its values.
        assert!(in_view("/api/todo?tag=b", &done));
        let owned = rec(serde_json::json!({"id": 2, "userId": 3}));
        assert!(in_view("/api/todo?userId=3", &owned));
        assert!(!in_view("/api/todo?userId=4", &owned));
        assert!(in_view("/api/todo?userId=4&userId=3", &owned));
        assert!(
            in_view("/api/todo?userId=me", &owned),
            "not a number: cannot tell"
        );
        let paged = rec(serde_json::json!({"id": 3, "page": 1, "order": 5}));
        assert!(
            in_view("/api/todo?page=2&order=9", &paged),
            "paging filters nothing"
        );
    }
}
