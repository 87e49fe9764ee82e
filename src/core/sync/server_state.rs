//! The verdict on one answer, reading the server's record when a conflict answer left it out.
//! PROTOCOL.md requires only `GET {url}` of a server, so a record that `GET {url}/{id}` does not
//! give (no such route: 404 or 405) is looked for in the collection before anything is decided:
//! a 404 from a server without the route must not delete the record locally.

use serde_json::Value;

use crate::core::clock::Env;
use crate::core::config::{CollectionConfig, UpdateMethod};
use crate::core::engine::Engine;
use crate::core::error::{ErrorKind, Result};
use crate::core::mutation::{Entry, Kind};
use crate::core::record::{id_key, Record};
use crate::core::storage::Storage;

use super::classify::{classify, keep_body, looks_like_html, record_of, version_field, version_of};
use super::classify::{ServerState, Verdict};
use super::http::{record_url, HttpResponse, NetError, Transport, REDIRECTED_TO};
use super::processing::still_processing;
use super::pull::{get_request, read_page};
use super::report::Report;
use super::request::quote_version;
use super::said_no::{at_sent_version, says_absent};

/// What reading the server's record before a write without a version found.
pub(super) enum Before {
    /// Send the write, with `If-Match` on this version when the server gave one.
    Send(Option<String>),
    /// The server's record moved since the one the write was made on: the conflict the write
    /// would have met, settled as if the server had answered it so.
    Moved(Verdict),
    /// The read failed for now (no answer in time, a 5xx, a 429): the write is not sent in this
    /// round but waits with this (transient) verdict, and so do the other writes of the
    /// collection still to be read first (each read would wait as long). Sent without
    /// `If-Match` instead, it would go over what others changed, and, held back by the network
    /// and delivered late, over the same change sent again after it.
    Unreachable(Verdict),
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// Classifies one answer; a conflict answer without the server's record reads it first
    /// (no transaction is open here). An update sent before whose answer never came meets a
    /// conflict with its own change where the server's record holds it (landed the first time,
    /// to a server that ignores `Idempotency-Key`): that is its acknowledgement.
    pub(super) async fn verdict<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        e: &Entry,
        res: &Result<HttpResponse, NetError>,
        report: &mut Report,
    ) -> Result<Verdict> {
        let v = self.verdict_of(transport, headers, e, res, report).await?;
        let cfg = self.collection(&e.c)?;
        Ok(match v {
            Verdict::Conflict(ServerState::Record(r, Some(ver)))
                if e.kind == Kind::Update && e.unsure && sent_landed(cfg, e, &r, false) =>
            {
                Verdict::Ack(Some(r), Some(ver))
            }
            refused @ Verdict::Rejected { .. } if e.kind == Kind::Create => {
                self.refused_as_taken(transport, headers, e, refused, report)
                    .await?
            }
            v => v,
        })
    }

    async fn verdict_of<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        e: &Entry,
        res: &Result<HttpResponse, NetError>,
        report: &mut Report,
    ) -> Result<Verdict> {
        let cfg = self.collection(&e.c)?;
        if let Ok(r) = res {
            if let Some(v) = self.said_no(transport, headers, e, r, report).await? {
                return Ok(v);
            }
        }
        let v = classify(cfg, e.kind, res, self.env.now_ms());
        match v {
            // A create has no server state to read: a 409 or 412 without the record is about
            // the request, not a record. Sent before under this key, it may be the idempotency
            // draft's "still being processed": tried again (a few times). Else it is a refusal
            // (a unique field taken), kept for the app in `rejected()`, not a deletion.
            Verdict::Conflict(ServerState::Unknown) if e.kind == Kind::Create => {
                let (status, body) = match res {
                    Ok(r) => (r.status, keep_body(&r.body)),
                    Err(_) => (409, String::new()),
                };
                let now = self.env.now_ms();
                Ok(still_processing(e, status, now).unwrap_or(Verdict::Rejected { status, body }))
            }
            Verdict::Conflict(ServerState::Unknown) => {
                // A delete answered with a 404 page whose record is indeed gone is done.
                let not_found = matches!(res, Ok(r) if matches!(r.status, 404 | 410));
                let mut v = self
                    .read_server_state(transport, headers, e, not_found, report)
                    .await;
                // Whether it was deleted cannot be told (its URL unreadable, the list without
                // it), and the app has deleted it since: that delete is the way out, and it
                // waits behind this update. Gone, the update is moot; the delete then meets its
                // own 404, which is done.
                let unreadable = matches!(
                    v,
                    Verdict::Transient {
                        kind: ErrorKind::Protocol,
                        ..
                    }
                );
                if not_found
                    && unreadable
                    && e.kind == Kind::Update
                    && self.deleted_since(e).await?
                {
                    v = Verdict::Conflict(ServerState::Deleted);
                }
                let needs_version = matches!(res, Ok(r) if r.status == 428);
                let processing = matches!(res, Ok(r) if r.status == 409)
                    .then(|| still_processing(e, 409, self.env.now_ms()))
                    .flatten();
                Ok(match v {
                    // Sent again under its key, answered 409 while the record stands at the
                    // very version it was sent with: its first send may be being applied, as
                    // for a create (above). A conflict, it would be told and sent again under
                    // a new key while the first may still land.
                    Verdict::Conflict(ServerState::Record(ref r, ref ver))
                        if processing.is_some() && at_sent_version(cfg, e, r, ver) =>
                    {
                        processing.unwrap_or(v)
                    }
                    Verdict::Conflict(ServerState::Deleted)
                        if e.kind == Kind::Delete && not_found =>
                    {
                        Verdict::Ack(None, None)
                    }
                    // A server that writes only with `If-Match` and gives no version Ferry can
                    // read: sent again, the write would meet the same 428 for ever.
                    Verdict::Conflict(ServerState::Record(_, None)) if needs_version => {
                        Verdict::Transient {
                            reason: "the server answered 428: it writes only with If-Match, \
                                     and its record carries no version Ferry can read (an ETag \
                                     an API on another origin must list in \
                                     Access-Control-Expose-Headers, or a `versionProperty`)"
                                .into(),
                            retry_after: None,
                            kind: ErrorKind::Protocol,
                            status: Some(428),
                        }
                    }
                    v => v,
                })
            }
            // A conflict body naming another record (the one a unique field collides with, an
            // error object with an id of its own) is not this record's server state. A create's
            // has another id by nature: `create_conflict` looks at its client id.
            Verdict::Conflict(ServerState::Record(r, _))
                if e.kind != Kind::Create && !names(cfg, &r, &e.r) =>
            {
                Ok(self
                    .read_server_state(transport, headers, e, false, report)
                    .await)
            }
            // An update of a versioned record acknowledged without a new version (a 204, `{"ok":
            // true}`, the record without its version): the record is read back for it. Without
            // it the next write would go without `If-Match` and overwrite what others changed.
            Verdict::Ack(rec, None)
                if e.kind == Kind::Update
                    && sent_header(e, "If-Match").is_some()
                    && rec.as_ref().is_none_or(|r| !answers_another(cfg, e, r)) =>
            {
                Ok(self.read_back(transport, headers, e, rec, report).await)
            }
            // A 409 with the record at the very version the write named is not about the
            // version (a unique field taken, a rule of the server's): sent again it would meet
            // the same answer for ever. A refusal, as a 422 would be, unless the record, read,
            // is at another version: then the body was the write echoed back (`said_no.rs`).
            Verdict::Conflict(ServerState::Record(r, Some(v)))
                if e.kind != Kind::Create
                    && names(cfg, &r, &e.r)
                    && matches!(res, Ok(x) if x.status == 409)
                    && sent_header(e, "If-Match") == Some(quote_version(&v)) =>
            {
                let body = res.as_ref().map(|x| keep_body(&x.body)).unwrap_or_default();
                let refused = Verdict::Rejected { status: 409, body };
                self.conflict_at_sent_version(transport, headers, e, refused, report)
                    .await
            }
            // A create that reached its answer through a redirect: the answer is the create's
            // only if it is the record sent (a 302 or 303 makes the POST a GET of whatever the
            // server points at: its login page's user, another record).
            Verdict::Ack(Some(r), _)
                if e.kind == Kind::Create && redirected(res) && !echoes_sent(cfg, e, &r) =>
            {
                Ok(Verdict::Transient {
                    reason: "unexpected answer: the create was redirected, and the record the \
                             server answered with is not the one sent (a 302 or 303 turns a \
                             POST into a GET: does the collection URL need a trailing slash?)"
                        .into(),
                    retry_after: None,
                    kind: ErrorKind::Protocol,
                    status: res.as_ref().ok().map(|x| x.status),
                })
            }
            Verdict::Ack(Some(r), _) if answers_another(cfg, e, &r) => Ok(Verdict::Transient {
                reason: "unexpected answer: it names another record than the one sent (a batch \
                         answered under the wrong ids?)"
                    .into(),
                retry_after: None,
                kind: ErrorKind::Protocol,
                status: None,
            }),
            v => Ok(v),
        }
    }

    /// Reads `GET {url}/{id}` before update or delete `e`, made on the server's record `base`
    /// without knowing its version. A server that gives versions only as `ETag`s gives none in
    /// a list, so a record a device only pulled would otherwise go without `If-Match` and
    /// silently replace what others changed since. The same record at a version: the write goes
    /// with `If-Match` on it. A changed one: the conflict. No version (the server keeps none),
    /// or no such route: the write goes as it is, and this collection is not read first again.
    /// A read that fails for now: the write waits ([`Before::Unreachable`]). Anything else
    /// (offline, a 404, a 403): as it is, to meet what it meets.
    pub(super) async fn read_first<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        e: &Entry,
        base: &Record,
        requests: &std::cell::Cell<usize>,
    ) -> Before {
        let Ok(cfg) = self.collection(&e.c) else {
            return Before::Send(None);
        };
        if self.versionless.borrow().contains(&e.c) {
            return Before::Send(None);
        }
        requests.set(requests.get() + 1);
        let req = get_request(&record_url(&cfg.url, &e.r), headers);
        let res = match transport.send(req).await {
            Err(NetError::Offline) => return Before::Send(None),
            // A 501 is no such route (below), not a failure for now.
            Ok(res) if !matches!(res.status, 408 | 425 | 429 | 500 | 502..=599) => res,
            failed => return unreachable(classify(cfg, e.kind, &failed, self.env.now_ms())),
        };
        let found = match record_of(cfg, &res) {
            Ok(Some(r)) if (200..300).contains(&res.status) && names(cfg, &r, &e.r) => r,
            // A page reached by a redirect (a captive portal's, a login page), not the
            // server's: as a failed read, the writes wait (sent without `If-Match`, they may
            // overwrite what others changed). A page answered in place may be a catch-all's
            // (an app's `index.html` for every URL the API lacks): the write goes, below.
            Err(why)
                if (200..300).contains(&res.status)
                    && looks_like_html(&res)
                    && res.header(REDIRECTED_TO).is_some() =>
            {
                return unreachable(Verdict::Transient {
                    reason: format!("unexpected answer: {why}"),
                    retry_after: None,
                    kind: ErrorKind::Protocol,
                    status: Some(res.status),
                });
            }
            _ => {
                // No such route (PROTOCOL.md asks only for `GET {url}`): a 405, or a 404 that
                // is a page rather than the API's JSON.
                let no_route = matches!(res.status, 405 | 501)
                    || (matches!(res.status, 404 | 410) && looks_like_html(&res));
                if no_route {
                    self.versionless.borrow_mut().push(e.c.clone());
                }
                return Before::Send(None);
            }
        };
        let Some(v) = version_of(cfg, &res, Some(&found)) else {
            self.versionless.borrow_mut().push(e.c.clone());
            return Before::Send(None);
        };
        // A PATCH replaces only its fields; a PUT or a delete, the whole record. Compared are
        // the fields the device read: a record's own URL may carry more (a detail serializer's
        // `url`, HAL links) than the list gave, and the id may be written as text there.
        let fields: Vec<&String> = match (cfg.update_method, e.kind) {
            (UpdateMethod::Patch, Kind::Update) if !e.replace => e.fields.iter().collect(),
            _ => base.keys().collect(),
        };
        let moved = fields.into_iter().any(|f| {
            *f != cfg.id_property && *f != cfg.version_property && base.get(f) != found.get(f)
        });
        // This very write, sent before and its answer lost, is not someone else's change.
        if moved && !sent_landed(cfg, e, &found, true) {
            Before::Moved(Verdict::Conflict(ServerState::Record(found, Some(v))))
        } else {
            Before::Send(Some(v))
        }
    }

    /// Whether the app deleted `e`'s record after `e` was queued.
    pub(super) async fn deleted_since(&self, e: &Entry) -> Result<bool> {
        let tx = self.begin(false).await?;
        let later = self.later(&tx, e).await?;
        Ok(later.iter().any(|l| l.kind == Kind::Delete))
    }

    /// The server's state of `e`'s record after a conflict answer that did not include it:
    /// `GET {url}/{id}`, else the record in `GET {url}`. Deleted only when both say it is gone;
    /// when neither can tell, the write waits and is sent again later (a 404 to the write alone
    /// is no proof: Fastify and Spring answer an unknown route with a JSON 404 too, and a list
    /// cut without a word leaves live records out). `not_found`: the write itself was answered
    /// 404 or 410.
    pub(super) async fn read_server_state<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        e: &Entry,
        not_found: bool,
        report: &mut Report,
    ) -> Verdict {
        let Ok(cfg) = self.collection(&e.c) else {
            return unreadable(
                not_found,
                ErrorKind::Protocol,
                "its collection is unknown".into(),
            );
        };
        report.requests += 1;
        // What the record URL answered, when that was not the record.
        let mut url_said = None;
        let gone = match transport
            .send(get_request(&record_url(&cfg.url, &e.r), headers))
            .await
        {
            Ok(res) if (200..300).contains(&res.status) => match record_of(cfg, &res) {
                Ok(Some(r)) if names(cfg, &r, &e.r) => {
                    let v = version_of(cfg, &res, Some(&r));
                    return Verdict::Conflict(ServerState::Record(r, v));
                }
                // A 404 said with a 200: Sencha's `{"success": false, …}`, or `null` (not a
                // login endpoint's answer, reached by a redirect). The list must agree.
                _ => says_absent(cfg, &res) && res.header(REDIRECTED_TO).is_none(),
            },
            Ok(res)
                if cfg.is_auth_status(res.status)
                    || matches!(res.status, 408 | 425 | 429 | 500..=599) =>
            {
                return classify(cfg, Kind::Update, &Ok(res), self.env.now_ms());
            }
            Ok(res) => {
                url_said = Some(res.status);
                matches!(res.status, 404 | 410)
            }
            Err(e) => return unreadable(not_found, ErrorKind::Network, e.to_string()),
        };
        // The whole list, every page, as a pull reads it: a record on a later page is there.
        let mut n = 0;
        let read = read_page(transport, headers, cfg, None, &mut n).await;
        report.requests += n;
        let page = match read {
            Ok((page, _)) => page,
            Err(err) => {
                let why = format!("the collection read failed: {}", err.message);
                return match unreadable(not_found, err.kind, why) {
                    Verdict::Transient {
                        reason,
                        retry_after,
                        kind,
                        ..
                    } => Verdict::Transient {
                        reason,
                        retry_after,
                        kind,
                        status: err.status,
                    },
                    other => other,
                };
            }
        };
        let partial = page.partial.is_some();
        let found = page.records.into_iter().find(|r| {
            r.get(&cfg.id_property)
                .and_then(|id| id_key(id).ok())
                .is_some_and(|k| k == e.r)
        });
        match found {
            // Listed, yet its own URL says it is not there: the URL is wrong, not the record
            // (a collection URL with a trailing slash the record routes do not take). Taken
            // for deleted, the edit would be dropped.
            Some(_) if gone && not_found => unreadable(
                not_found,
                ErrorKind::Protocol,
                format!(
                    "its URL {} answers 404 while the collection lists it (does the collection \
                     URL have a trailing slash the record routes do not take?)",
                    record_url(&cfg.url, &e.r)
                ),
            ),
            Some(r) => {
                let v = version_field(cfg, &r);
                Verdict::Conflict(ServerState::Record(r, v))
            }
            // Absent from a list that may hold part of the collection only: not proof.
            None if gone && !partial => Verdict::Conflict(ServerState::Deleted),
            // LoopBack answers 400 to a GET by id carrying the collection's `filter`: said so.
            None => unreadable(
                not_found,
                ErrorKind::Protocol,
                match url_said {
                    Some(status) if !gone => format!(
                        "its URL {} answered {status}, and the collection does not list it: \
                         whether it was deleted cannot be told (does the record route take the \
                         collection URL's query?)",
                        record_url(&cfg.url, &e.r)
                    ),
                    _ => "neither its URL nor the collection holds it".into(),
                },
            ),
        }
    }
}

/// The value of header `name` that `e` was sent with.
pub(super) fn sent_header(e: &Entry, name: &str) -> Option<String> {
    let sent = e.sent.as_ref()?;
    let (_, v) = sent
        .headers
        .iter()
        .find(|(h, _)| h.eq_ignore_ascii_case(name))?;
    Some(v.clone())
}

/// Whether record `r`, the answer to `e`, is another record's: a create's answer that echoes
/// a client id other than the one sent, an update's that carries another id. Taken as ours, it
/// would rename or overwrite the wrong record.
fn answers_another(cfg: &CollectionConfig, e: &Entry, r: &Record) -> bool {
    match e.kind {
        Kind::Create => {
            let sent = e.sent.as_ref().and_then(|x| x.body.as_ref());
            let cid = |v: Option<&Value>| v.and_then(|v| v.get(&cfg.client_id_property)).cloned();
            match (cid(sent), r.get(&cfg.client_id_property)) {
                (Some(Value::String(mine)), Some(Value::String(echoed))) => mine != *echoed,
                _ => false,
            }
        }
        Kind::Update => r.contains_key(&cfg.id_property) && !names(cfg, r, &e.r),
        Kind::Delete => false,
    }
}

fn redirected(res: &Result<HttpResponse, NetError>) -> bool {
    matches!(res, Ok(x) if x.header(REDIRECTED_TO).is_some())
}

/// Whether record `r`, a create's answer, is the record sent: its client id when it has one,
/// else the fields sent that it shows, most of them equal. An answer of the id alone (a page
/// the redirect named, Post/Redirect/Get) says nothing against it.
fn echoes_sent(cfg: &CollectionConfig, e: &Entry, r: &Record) -> bool {
    let sent = e.sent.as_ref().and_then(|x| x.body.as_ref());
    if let Some(echoed) = r.get(&cfg.client_id_property) {
        return sent.and_then(|b| b.get(&cfg.client_id_property)) == Some(echoed);
    }
    let own = [
        &cfg.id_property,
        &cfg.version_property,
        &cfg.client_id_property,
    ];
    if r.keys().all(|k| own.contains(&k)) {
        return true;
    }
    let Some(Value::Object(sent)) = sent else {
        return true;
    };
    let (mut same, mut other) = (0, 0);
    for (k, v) in sent.iter().filter(|(k, _)| !own.contains(k)) {
        match r.get(k) {
            Some(x) if x == v => same += 1,
            Some(_) => other += 1,
            None => {}
        }
    }
    same > 0 && same > other
}

/// Whether the server's record `found` holds every field `e`'s request sends, as sent. `whole`:
/// `found` is the record as its URL gives it, where a field cleared may be left out; else (a
/// conflict answer's body, which may name the record only) every field must be there.
pub(super) fn sent_landed(cfg: &CollectionConfig, e: &Entry, found: &Record, whole: bool) -> bool {
    let body = e.sent.as_ref().and_then(|s| s.body.as_ref());
    body.and_then(Value::as_object).is_some_and(|b| {
        b.iter()
            .filter(|(f, _)| **f != cfg.version_property)
            .all(|(f, v)| {
                found.get(f) == Some(v) || (whole && v.is_null() && !found.contains_key(f))
            })
    })
}

/// Whether record `r` is the one stored under `key`.
pub(super) fn names(cfg: &CollectionConfig, r: &Record, key: &str) -> bool {
    r.get(&cfg.id_property)
        .and_then(|id| id_key(id).ok())
        .is_some_and(|k| k == key)
}

/// The write waits: what the server holds could not be told. `not_found`: the write was
/// answered 404 or 410 (else it met a conflict).
fn unreadable(not_found: bool, kind: ErrorKind, why: String) -> Verdict {
    let after = if not_found {
        "the write was answered \"not found\", and the server's record could not be read"
    } else {
        "the server's record could not be read after a conflict"
    };
    Verdict::Transient {
        reason: format!("{after}: {why}"),
        retry_after: None,
        kind,
        status: None,
    }
}

/// How the failure of a write's read first (`read_first`) begins: its write never left.
pub(super) const READ_FIRST: &str = "reading its version first";

/// What a write whose read first failed for now waits with: that failure, named as the read's.
fn unreachable(failed: Verdict) -> Before {
    match failed {
        Verdict::Transient {
            reason,
            retry_after,
            kind,
            status,
        } => Before::Unreachable(Verdict::Transient {
            reason: format!("{READ_FIRST}: {reason}"),
            retry_after,
            kind,
            status,
        }),
        // Not reached: a failure, one of the statuses read as one, or a portal's page.
        _ => Before::Send(None),
    }
}
