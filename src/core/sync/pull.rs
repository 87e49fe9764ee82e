//! Pulling a collection from the server (PROTOCOL.md section 5): full snapshots and `since`
//! deltas with tombstones. A record with a pending local change is never overwritten: its change
//! is kept and rebased onto the server's version.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::core::clock::Env;
use crate::core::config::{CollectionConfig, ConflictPolicy};
use crate::core::engine::{Change, ChangeKind, Engine};
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::mutation::{Entry, Kind};
use crate::core::record::{id_key, Record, Row};
use crate::core::storage::{Key, Read, Storage, Table, Txn};
use crate::core::tx::answered_key;

use super::apply::rebase;
use super::classify::looks_like_html;
use super::classify::version_field;
use super::http::{
    origin_of, query_param, resolve_url, with_query, HttpRequest, HttpResponse, Transport,
};
use super::page::{parse_page, shown, Page};
use super::paging::{paging, Headers, Paging};
use super::report::Report;
use super::request::client_id_of;

/// How many sends of a create whose answer may have been lost hold a pull's cursor (below).
const DOUBT_ATTEMPTS: u32 = 8;

/// The longest cursor kept (in bytes). Longer ones could only go in URLs that servers refuse
/// (414, 431: a full read follows) or drop without an answer (every read would then fail).
const MAX_CURSOR: usize = 8192;

fn cursor_key(c: &str) -> Key {
    Key::Str(format!("cursor:{c}"))
}

/// At most this many pages in one read: a server whose `next` links never end is an error, not a
/// read that never ends.
const MAX_PAGES: usize = 10_000;

/// At most this many empty pages in a row: a server that keeps linking to pages without records
/// (page numbers counting up for ever) is an error long before `MAX_PAGES` requests.
const MAX_EMPTY_PAGES: usize = 50;

/// Whether a pulled server record `s` meets the pending `entries` of a record (whose server
/// state they were made on is `base`; `deleted`: deleted here) in a conflict the collection's
/// policy must decide, rather than in changes that simply add up.
fn conflicts_here(
    cfg: &CollectionConfig,
    base: Option<&Record>,
    s: &Record,
    entries: &[Entry],
    deleted: bool,
) -> bool {
    let Some(base) = base else {
        return false; // nothing to compare with: taken as it comes, as before
    };
    let bookkeeping = |f: &String| *f == cfg.id_property || *f == cfg.version_property;
    let server_changed: Vec<&String> = base
        .keys()
        .chain(s.keys())
        .filter(|f| !bookkeeping(f) && base.get(*f) != s.get(*f))
        .collect();
    if server_changed.is_empty() {
        return false;
    }
    if deleted
        || matches!(
            cfg.conflict,
            ConflictPolicy::ServerWins | ConflictPolicy::Custom
        )
    {
        return true;
    }
    entries
        .iter()
        .any(|e| e.replace || e.fields.iter().any(|f| server_changed.contains(&f)))
}

pub(super) fn get_request(url: &str, headers: &[(String, String)]) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: url.to_string(),
        headers: headers.to_vec(),
        body: None,
    }
}

/// The error of a read of `url` answered with something else than a 2xx.
fn refused_read(cfg: &CollectionConfig, res: &HttpResponse, url: &str) -> Result<()> {
    if (200..300).contains(&res.status) {
        return Ok(());
    }
    let what = if cfg.is_auth_status(res.status) {
        " (not authorised)"
    } else {
        ""
    };
    Err(Error::answered(
        res.status,
        format!(
            "the server answered {}{what} to a read of {}{}",
            res.status,
            shown(url),
            super::excerpt::said(res)
        ),
    ))
}

/// The page a read of `url` was answered with, and how it says the list goes on; one that is
/// not a page is a `ProtocolError` with the answer's status.
fn read_answer(
    cfg: &CollectionConfig,
    res: &HttpResponse,
    url: &str,
    delta: bool,
) -> Result<(Page, Paging)> {
    let why = if looks_like_html(res) {
        Err("an HTML page where JSON was expected (a captive portal, a login page?)".to_string())
    } else {
        parse_page(cfg, &res.body)
    };
    let page = why.map_err(|e| Error {
        status: Some(res.status),
        ..Error::new(ErrorKind::Protocol, e)
    })?;
    let headers = Headers {
        link: res.header("link"),
        total_count: res.header("x-total-count"),
        pagination: res.header("x-pagination"),
    };
    let paging = paging(
        page.envelope.as_ref(),
        page.records.len(),
        url,
        headers,
        (cfg.success_field(), delta),
    );
    Ok((page, paging))
}

/// GETs collection `cfg` since cursor `since` (in full without one, or when the server no
/// longer knows it): the page and the cursor it was read from.
pub(super) async fn read_page<T: Transport>(
    transport: &T,
    headers: &[(String, String)],
    cfg: &CollectionConfig,
    mut since: Option<String>,
    requests: &mut usize,
) -> Result<(Page, Option<String>)> {
    let mut url;
    let res = loop {
        url = match &since {
            Some(cur) => with_query(&cfg.url, "since", cur),
            None => cfg.url.clone(),
        };
        *requests += 1;
        let res = transport
            .send(get_request(&url, headers))
            .await
            .map_err(Error::from)?;
        // A cursor the server no longer knows (expired, or from a wiped server) or cannot take
        // (414 or 431: too long for a URL or for the server's header limit) would fail every
        // pull: read everything once instead.
        if since.is_some() && matches!(res.status, 400 | 410 | 414 | 431) {
            since = None;
            continue;
        }
        break res;
    };
    refused_read(cfg, &res, &url)?;
    let (mut page, mut paging) = read_answer(cfg, &res, &url, since.is_some())?;
    // What the whole list holds, as the first page says (later pages may count changes made
    // while the pages were read).
    let total = paging.total;
    // A paged answer is one read: every page, or (any page failing) none, since a part of a
    // snapshot would take the records on the other pages for deleted.
    let mut seen = HashSet::new();
    let mut empty = 0;
    let key = |r: &Record| r.get(&cfg.id_property).and_then(|v| id_key(v).ok());
    let mut ids: HashSet<String> = page.records.iter().filter_map(key).collect();
    loop {
        if let Some(why) = paging.stuck.take() {
            page.partial = Some(format!("it is one page of a longer list: {why}"));
            break;
        }
        let Some(link) = paging.next.take() else {
            break;
        };
        let link = link.trim();
        let next = resolve_url(&url, link);
        // Only on the collection's own origin: the app's headers (its credentials) go with
        // every page, and a link is the server's word (built from a spoofable `Host`, say). A
        // backslash or a control character, which browsers read their own way (`/\host` is
        // `//host` to them), has no place in a link: refused, not parsed.
        let here = origin_of(&url, cfg.page_origin.as_deref());
        let odd = link.chars().any(|ch| ch == '\\' || ch.is_control());
        if odd || (here.is_some() && origin_of(&next, cfg.page_origin.as_deref()) != here) {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "the read's next page ({}) is not on the collection's origin, or not a link \
                     every browser reads alike: not followed, so that the app's headers do not \
                     go there",
                    shown(&next)
                ),
            ));
        }
        url = next;
        if !seen.insert(url.clone()) || seen.len() >= MAX_PAGES || empty >= MAX_EMPTY_PAGES {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("the read's `next` links do not end (at {})", shown(&url)),
            ));
        }
        *requests += 1;
        let res = transport
            .send(get_request(&url, headers))
            .await
            .map_err(Error::from)?;
        refused_read(cfg, &res, &url)?;
        let (more, more_paging) = read_answer(cfg, &res, &url, since.is_some())?;
        // A full read's page of records all read before: the server ignores what the next
        // page was asked with (Sencha's `start`, say), and would answer the same page up to
        // its total. (A delta, a keyset `next` link's `since` included, may list a record once
        // per change.)
        let keys: Vec<Option<String>> = more.records.iter().map(key).collect();
        if since.is_none()
            && query_param(&url, "since").is_none()
            && !keys.is_empty()
            && keys
                .iter()
                .all(|k| k.as_ref().is_some_and(|k| ids.contains(k)))
        {
            page.partial = Some(format!(
                "its page {} repeats records read before (does the server ignore the paging \
                 parameters?)",
                shown(&url)
            ));
            break;
        }
        ids.extend(keys.into_iter().flatten());
        empty = if more.records.is_empty() {
            empty + 1
        } else {
            0
        };
        page.records.extend(more.records);
        page.others += more.others;
        page.cursor = more.cursor.or(page.cursor);
        paging = more_paging;
    }
    // A whole list shorter than the server says it is: pages were missed (offset paging over a
    // list that lost records meanwhile, a page limit Ferry cannot see), and the records on them
    // would look deleted. A delta is a part of the list by design.
    if let (None, Some(total), None) = (&since, total, &page.partial) {
        // Records, not entries: a record read twice (offset paging over a list that changed
        // between pages) stands for one that was skipped.
        let without = page.records.iter().filter(|r| key(r).is_none()).count();
        let read = (ids.len() + without + page.others) as u64;
        if read < total {
            page.partial = Some(format!(
                "it gave {read} different records where the server counts {total}, and named \
                 no further page that Ferry can follow (Ferry follows `next` links, `Link: \
                 rel=\"next\"`, `X-Pagination`, Feathers' `skip`, Sencha's `start` and json-server's \
                 `_page`)"
            ));
        }
    }
    Ok((page, since))
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// The cursor of collection `c` and the mark of the last answers applied, read together.
    pub(super) async fn pull_marks(&self, c: &str) -> Result<(Option<String>, Option<Value>)> {
        let tx = self.begin(false).await?;
        let reads = [
            Read::Get(Table::State, cursor_key(c)),
            Read::Get(Table::State, answered_key(c)),
        ];
        let mut got = tx.t.read_many(&reads).await?.into_iter();
        let mut next = || {
            got.next()
                .and_then(|g| g.into_iter().next())
                .map(|(_, v)| v)
        };
        let cursor = next().and_then(|v| v.as_str().map(str::to_string));
        Ok((cursor, next()))
    }

    /// Reads collection `c` from the server and merges it. Returns what changed.
    pub async fn pull<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        c: &str,
    ) -> Result<Report> {
        self.pull_since(transport, headers, c, false).await
    }

    /// [`Engine::pull`], reading everything whatever the cursor (`collection.pull({ full:
    /// true })`). The cursor is replaced only once the read is applied: a read that fails
    /// leaves the next pull a delta, as before.
    pub async fn pull_full<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        c: &str,
    ) -> Result<Report> {
        self.pull_since(transport, headers, c, true).await
    }

    async fn pull_since<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        c: &str,
        full: bool,
    ) -> Result<Report> {
        let cfg = self.collection(c)?;
        let mut requests = 0;
        // A flush that applies answers while the read is out may leave local records newer
        // than what the read brings (a create acked after the server took its snapshot would be
        // removed as gone, an acked update rolled back, an acked delete brought back). Such a
        // read is not applied: it is made again.
        let mut tries = 0;
        let (tx, page, since) = loop {
            let (since, mark) = self.pull_marks(c).await?;
            let since = since.filter(|_| !full);
            let (mut page, since) =
                read_page(transport, headers, cfg, since, &mut requests).await?;
            if since.is_none() || page.cursor.is_none() {
                self.check_cut(transport, headers, cfg, &mut page, &mut requests)
                    .await?;
            }
            let tx = self.begin(true).await?;
            if tx.t.get(Table::State, &answered_key(c)).await? == mark {
                break (tx, page, since);
            }
            tries += 1;
            if tries == 3 {
                return Err(Error::new(
                    ErrorKind::Network,
                    "answers to this store's changes kept arriving while the server was read: \
                     pull again",
                ));
            }
        };
        self.warn_if_stored_twice(cfg, &page.records);
        let delta = since.is_some() && page.cursor.is_some();
        let mut report = Report {
            requests,
            ..Report::default()
        };
        let mut pending: HashMap<String, Vec<Entry>> = HashMap::new();
        for e in tx.outbox().await?.into_iter().filter(|e| e.c == c) {
            pending.entry(e.r.clone()).or_default().push(e);
        }
        let (blocked, _) = self.held_back(&tx, false).await?;
        // Our creates still waiting for their answer, by the client id they carry.
        let creating: HashMap<String, String> = pending
            .values()
            .flatten()
            .filter(|e| e.kind == Kind::Create && e.in_flight())
            .map(|e| (client_id_of(e).to_string(), e.r.clone()))
            .collect();
        // Of those, the ones that may have landed unheard (out now, or an answer lost), for a
        // while: one of them may be a record this read says nothing of, or names deleted
        // without this store knowing its id yet (another device deleted it since). The cursor
        // then stays as it is, so that the read after the create's answer (replayed from its
        // key) meets the deletion. A create that keeps failing stops holding it after a few
        // tries. (An attempt's outcome clears `error` when picked and writes it when known.)
        let doubtful = pending.values().flatten().any(|e| {
            e.kind == Kind::Create
                && e.in_flight()
                && (e.unsure || e.error.is_none())
                && e.attempts <= DOUBT_ATTEMPTS
        });
        let mut held = false;
        let mut seen: HashSet<String> = HashSet::new();
        // A record this pull did not apply (held by a pending or open change) must be read
        // again: the cursor then stays where it was, or the client would stay stale for good.
        let mut skipped = false;
        for s in page.records {
            let Some(key) = s.get(&cfg.id_property).and_then(|v| id_key(v).ok()) else {
                continue;
            };
            // Our own create whose answer was lost: the create's retry will bring it home.
            let own = s
                .get(&cfg.client_id_property)
                .and_then(Value::as_str)
                .and_then(|cid| creating.get(cid))
                .filter(|local| **local != key);
            if let Some(local) = own {
                seen.insert(local.clone());
                skipped = true;
                continue;
            }
            seen.insert(key.clone());
            if blocked.contains(&(c.to_string(), key.clone())) {
                skipped = true;
                continue;
            }
            let tombstone = s.get("deleted") == Some(&Value::Bool(true));
            let old = tx.row(c, &key).await?;
            let idv = cfg.id_of(&s, &key);
            match pending.get_mut(&key) {
                None if tombstone => {
                    if old.is_some() {
                        tx.drop_row(c, &key)?; // nothing pending: no ghost
                        report
                            .changes
                            .push(Change::remote(ChangeKind::Deleted, c, idv, None));
                    } else {
                        held |= doubtful; // maybe the record of one of those creates
                    }
                }
                None => {
                    let mut row = Row::new(cfg, s);
                    // A server that gives versions only as ETags (PROTOCOL.md section 4) lists
                    // records without them: the version the last answer gave stays. Stale, it
                    // makes the next write meet a 412 rather than overwrite without one; over
                    // the record that write was made on, that is no conflict (`settle.rs`), and
                    // the write goes again over the server's version.
                    row.v = version_field(cfg, &row.d).or_else(|| old.as_ref()?.v.clone());
                    if old.as_ref() != Some(&row) {
                        tx.put_row(c, &key, &row)?;
                        if old.as_ref().map(|o| &o.d) != Some(&row.d) {
                            let kind = if old.is_some() {
                                ChangeKind::Updated
                            } else {
                                ChangeKind::Created
                            };
                            report
                                .changes
                                .push(Change::remote(kind, c, idv, Some(row.d)));
                        }
                    }
                }
                Some(entries) => {
                    // Pending here: keep the local change, now based on the server's version.
                    if entries.iter().any(|e| e.kind == Kind::Create) || tombstone {
                        skipped = true;
                        continue;
                    }
                    let v = version_field(cfg, &s);
                    // Where taking the server's new version under the local change would decide
                    // a conflict by itself (a field both sides changed, any change under
                    // `serverWins` or `custom`, a delete over an edit), the record is left as it
                    // is: the flush then meets the conflict, and the collection's policy decides
                    // it, with its event.
                    let base = match &old {
                        Some(row) => row.b.as_ref(),
                        None => entries.iter().find_map(|e| e.base.as_ref()),
                    };
                    if conflicts_here(cfg, base, &s, entries, old.is_none()) {
                        skipped = true;
                        continue;
                    }
                    if let Some(mut row) = old {
                        let unsent: Vec<Entry> =
                            entries.iter().filter(|e| !e.in_flight()).cloned().collect();
                        let rebased = rebase(cfg, &s, &row.d, &unsent);
                        skipped |= rebased.is_none() || unsent.len() != entries.len();
                        if let Some(d) = rebased {
                            if unsent.len() == entries.len() {
                                row.d = d;
                                row.b = Some(s);
                                row.v = v.or(row.v);
                                row.reindex(cfg);
                                tx.put_row(c, &key, &row)?;
                                report.changes.push(Change::remote(
                                    ChangeKind::Updated,
                                    c,
                                    idv,
                                    Some(row.d),
                                ));
                            }
                        }
                    } else {
                        // Deleted here: an unsent delete now goes over this version; one already
                        // sent may still be refused and bring back its older base, so read again.
                        skipped |= entries.iter().any(|e| e.in_flight());
                        for e in entries
                            .iter_mut()
                            .filter(|e| e.kind == Kind::Delete && !e.in_flight())
                        {
                            e.base = Some(s.clone());
                            e.base_v = v.clone().or(e.base_v.take());
                            tx.put_entry(e)?;
                        }
                    }
                }
            }
        }
        if let Some(why) = &page.partial {
            // Part of the list, maybe: what it lacks may be on the pages not read. Read whole
            // next time.
            skipped = true;
            self.warn_once(format!("partial read:{c}"), || {
                format!(
                    "the read of `{c}` ({}) may be part of the list only: {why}. Its records were \
                     applied, none removed: records deleted on the server stay on this device \
                     until a read gets the whole list.",
                    shown(&cfg.url)
                )
            });
        } else if !delta {
            // A full snapshot: what it lacks and nothing local holds on to is gone. It says
            // nothing of a record one of those creates landed as and another device deleted.
            held |= doubtful;
            for (k, v) in tx.t.get_all(Table::Records(c)).await? {
                let Key::Str(key) = k else { continue };
                if seen.contains(&key) {
                    continue;
                }
                if let Some(entries) = pending.get(&key) {
                    // Edited or deleted here and missing there: deleted there, maybe (a
                    // snapshot has no tombstones). The change may yet be refused, which brings
                    // the record back: the cursor stays as it is until the change has met the
                    // server, or it would pass the deletion. (A record whose create is pending
                    // is missing there anyway; a refused create takes its row away.)
                    held |= entries.iter().all(|e| e.kind != Kind::Create);
                    continue;
                }
                // A ghost stays: it may stand for an alias, which a snapshot does not list.
                let Some(row) = Row::from_stored(v)? else {
                    continue;
                };
                tx.drop_row(c, &key)?;
                let idv = cfg.id_of(&row.d, &key);
                report
                    .changes
                    .push(Change::remote(ChangeKind::Deleted, c, idv, None));
            }
        }
        // A cursor too long for a URL would make every read after this one fail (servers drop
        // the connection rather than answer 414): reads stay full reads instead.
        let cursor = page.cursor.filter(|cur| {
            let fits = cur.len() <= MAX_CURSOR;
            if !fits {
                self.warn_once(format!("long cursor:{c}"), || {
                    format!(
                        "the server's cursor for `{c}` is {} characters long, too long to send \
                         back in a URL: every read of it is a full read",
                        cur.len()
                    )
                });
            }
            fits
        });
        match (cursor, skipped) {
            (Some(cur), false) if !held => {
                tx.t.put(Table::State, &cursor_key(c), &Value::String(cur))?
            }
            // Read again from the old cursor (or in full) next time; held, a full read keeps
            // the cursor stored, if any (`{ full: true }`).
            (Some(_), true) if since.is_some() => {}
            _ if held && !skipped => {}
            _ => tx.t.delete(Table::State, &cursor_key(c))?,
        }
        tx.commit().await?;
        Ok(report)
    }
}
