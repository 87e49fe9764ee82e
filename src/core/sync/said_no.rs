//! Refusals believed only once the server's record is read. Writes answered no in Sencha's way:
//! a 2xx whose JSON object says `"success": false` (`successProperty`); servers written for
//! Sencha's proxies refuse a write so, say "not found" so, and have no 409 to say that a write
//! sent again (its answer lost) is already there; a login endpoint a session's redirect leads
//! to may answer so too. And a 409 whose body is the record at the very version the write was
//! sent with, which may be the write itself echoed back rather than the server's record.

use crate::core::clock::Env;
use crate::core::config::CollectionConfig;
use crate::core::engine::Engine;
use crate::core::error::{ErrorKind, Result};
use crate::core::mutation::{Entry, Kind};
use crate::core::record::Record;
use crate::core::storage::Storage;
use serde_json::Value;

use super::classify::{has_id, keep_body, version_field, ServerState, Verdict};
use super::http::{HttpResponse, Transport, REDIRECTED_TO};
use super::processing::{sends_under_key, RETRIED_READS};
use super::report::Report;
use super::request::quote_version;
use super::server_state::{sent_header, sent_landed};

impl<S: Storage, E: Env> Engine<S, E> {
    /// The verdict on write `e` when its answer `r` says `"success": false`; none when it does
    /// not. Reached by a redirect, it is not the API's (a login endpoint's, the session gone):
    /// the write waits. A create is refused. An update or a delete reads the record first: a
    /// delete whose record is gone is done; an update whose record is gone meets a deletion
    /// conflict (as after a 404); an update sent before that the server holds is acknowledged.
    /// Else, and when the record cannot be read, the refusal stands; a read that got no answer
    /// waits.
    pub(super) async fn said_no<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        e: &Entry,
        r: &HttpResponse,
        report: &mut Report,
    ) -> Result<Option<Verdict>> {
        let cfg = self.collection(&e.c)?;
        let sent = e.sent.as_ref().and_then(|s| s.body.as_ref());
        if !refused_in_body(cfg, r, sent) {
            return Ok(None);
        }
        if let Some(to) = r.header(REDIRECTED_TO) {
            return Ok(Some(Verdict::Transient {
                reason: format!(
                    "the answer came by a redirect to {to} and says no{} (a login page? the \
                     session may have ended)",
                    super::excerpt::said(r)
                ),
                retry_after: None,
                kind: ErrorKind::Protocol,
                status: Some(r.status),
            }));
        }
        let refused = Verdict::Rejected {
            status: r.status,
            body: keep_body(&r.body),
        };
        if e.kind == Kind::Create {
            return Ok(Some(refused));
        }
        // An update sent before, whose answer was lost, that the server holds: done.
        let landed = |found: Record, v| {
            (e.unsure && sent_landed(cfg, e, &found, true)).then_some(Verdict::Ack(Some(found), v))
        };
        let v = self
            .read_before_refusing(transport, headers, e, refused, landed, report)
            .await?;
        Ok(Some(v))
    }

    /// The verdict on update or delete `e`, answered 409 with its record at the very version it
    /// was sent with (`refused`: the server's reason of its own, a unique field taken). That
    /// body may also be the write itself, echoed back at the version it was sent with (Rails'
    /// `render json: e.record` for a `StaleObjectError`): a conflict, which a refusal would
    /// undo. The record is read: at another version, it is the conflict it looks like.
    pub(super) async fn conflict_at_sent_version<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        e: &Entry,
        refused: Verdict,
        report: &mut Report,
    ) -> Result<Verdict> {
        let cfg = self.collection(&e.c)?;
        let moved = |found: Record, v: Option<String>| {
            let other = (v.is_some() || version_field(cfg, &found).is_some())
                && !at_sent_version(cfg, e, &found, &v);
            other.then_some(Verdict::Conflict(ServerState::Record(found, v)))
        };
        self.read_before_refusing(transport, headers, e, refused, moved, report)
            .await
    }

    /// What refusal `refused` of update or delete `e` becomes once the server's record is read:
    /// gone, a delete is done and an update meets a deletion conflict (as after a 404); there,
    /// `found` decides (the refusal stands where it says nothing). A read that got no answer
    /// for now makes the write wait; one that cannot tell leaves the refusal standing.
    async fn read_before_refusing<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        e: &Entry,
        refused: Verdict,
        found: impl FnOnce(Record, Option<String>) -> Option<Verdict>,
        report: &mut Report,
    ) -> Result<Verdict> {
        let cfg = self.collection(&e.c)?;
        Ok(
            match self
                .read_server_state(transport, headers, e, false, report)
                .await
            {
                Verdict::Conflict(ServerState::Deleted) if e.kind == Kind::Delete => {
                    Verdict::Ack(None, None)
                }
                // An update of a record deleted meanwhile: as after a 404, the policy decides.
                gone @ Verdict::Conflict(ServerState::Deleted) => gone,
                Verdict::Conflict(ServerState::Record(r, v)) => found(r, v).unwrap_or(refused),
                // Offline: the write waits to be online. A read that got no answer (a
                // timeout), or one for now (a 5xx, 408, 425, 429), holds it a few rounds, then
                // its refusal stands, rather than the write being sent, and read for, for ever
                // (a page that always times out, a 5xx without CORS headers). A 401: it waits.
                waits @ Verdict::Transient {
                    kind: ErrorKind::Offline,
                    ..
                } => waits,
                waits @ Verdict::Transient {
                    kind: ErrorKind::Network,
                    status: None | Some(408 | 425 | 429 | 500..=599),
                    ..
                } if sends_under_key(e) <= RETRIED_READS => waits,
                Verdict::Unauthorized => Verdict::Unauthorized,
                Verdict::Transient {
                    status: Some(s), ..
                } if cfg.is_auth_status(s) => Verdict::Unauthorized,
                // Unreadable (its URL and the list tell nothing, or refuse to), an update of a
                // record the app has deleted since: that delete is the way out.
                Verdict::Transient { .. }
                    if e.kind == Kind::Update && self.deleted_since(e).await? =>
                {
                    Verdict::Conflict(ServerState::Deleted)
                }
                // Not to be told: the server's "no" stands (waiting, the write would be sent,
                // and read for, again and again).
                _ => refused,
            },
        )
    }
}

/// Whether a 2xx answer to a write is the server saying no in Sencha's way: a JSON object
/// whose `successProperty` is `false` (`{"success": false, "message": "Title is required"}`).
/// Taken for a success, an update or a delete would count as done, and the server would never
/// have it. Not when the field is one the write sent: then it is the record's own.
pub fn refused_in_body(cfg: &CollectionConfig, res: &HttpResponse, sent: Option<&Value>) -> bool {
    let sent_it = |field: &str| {
        sent.and_then(Value::as_object)
            .is_some_and(|b| b.contains_key(field))
    };
    (200..300).contains(&res.status)
        && says_failure(cfg, res)
        && cfg.success_field().is_some_and(|f| !sent_it(f))
}

/// Whether `res`'s body is a JSON object whose `successProperty` is `false` and that is not a
/// record (it carries no id: a record may have a field of that name).
pub fn says_failure(cfg: &CollectionConfig, res: &HttpResponse) -> bool {
    let Some(field) = cfg.success_field() else {
        return false;
    };
    if !res.body.contains(field) {
        return false;
    }
    let body = res.body.trim_start_matches('\u{feff}').trim();
    match super::json_body::parse::<Value>(body) {
        Ok(Value::Object(m)) => m.get(field) == Some(&Value::Bool(false)) && !has_id(cfg, &m),
        _ => false,
    }
}

/// Whether a 2xx answer to `GET {url}/{id}` says the record is not there: Sencha's
/// `{"success": false, …}`, or `null` (bare, or as an envelope's root: `{"data": null}`), as
/// servers that answer a missing record with a 200 give it. Not `{}` or `[]`, nor an empty
/// list under the root: a list route (the record URL taking the collection's query) answers so.
pub fn says_absent(cfg: &CollectionConfig, res: &HttpResponse) -> bool {
    if says_failure(cfg, res) {
        return true;
    }
    let body = res.body.trim_start_matches('\u{feff}').trim();
    match super::json_body::parse::<Value>(body) {
        Ok(Value::Null) => true,
        Ok(Value::Object(m)) => {
            !has_id(cfg, &m) && matches!(m.get(&cfg.root_property), Some(Value::Null))
        }
        _ => false,
    }
}

/// Whether the server's record `r` (read with version `v`) stands at the version write `e` was
/// sent with: its `versionProperty`, or the read's version (an `ETag`), names it. Either will
/// do: the `If-Match` sent came from one of them, and a strong ETag on reads alone (a hash of
/// the content: Django's `ConditionalGetMiddleware`, Spring's `ShallowEtagHeaderFilter`) may
/// differ from the version field, or the other way round.
pub(super) fn at_sent_version(
    cfg: &CollectionConfig,
    e: &Entry,
    r: &Record,
    v: &Option<String>,
) -> bool {
    let Some(sent) = sent_header(e, "If-Match") else {
        return false;
    };
    [version_field(cfg, r), v.clone()]
        .iter()
        .flatten()
        .any(|x| quote_version(x) == sent)
}
