//! What the server holds once it acknowledged a write: the answer merged over what was sent, or,
//! when the answer shows that the write was not stored (a server that keeps the last writer's
//! answers a write that lost with the record that won), the answer alone.

use serde_json::{Map, Value};

use crate::core::config::CollectionConfig;
use crate::core::mutation::{Entry, Kind};
use crate::core::record::Record;

/// What the server holds once it acknowledged `e` with `answer` (at `version`, the answer's):
/// what it held before (a PATCH's `base`; a POST or PUT sends the whole record), what was sent
/// over that, and the answer over both. Servers often answer with less than the whole record
/// (`{"id": 7}`, the changed fields of a PATCH, or nothing at all): the fields an answer leaves
/// out keep what was sent, as Sencha's readers merge an answer into the record, rather than being
/// lost locally and then on the server by the next PUT. An answer that is the record as the
/// server holds it without this write ([`superseded`]) is taken alone.
pub(super) fn acked_state(
    cfg: &CollectionConfig,
    e: &Entry,
    base: Option<Record>,
    answer: Option<Record>,
    version: Option<&str>,
) -> Record {
    let sent = match e.sent.as_ref().and_then(|x| x.body.as_ref()) {
        Some(Value::Object(sent)) => Some(sent),
        _ => None,
    };
    if let (Some(sent), Some(answer)) = (sent, &answer) {
        if e.kind == Kind::Update && superseded(cfg, e, sent, base.as_ref(), answer, version) {
            return answer.clone();
        }
    }
    let patch = e.sent.as_ref().is_some_and(|x| x.method == "PATCH");
    let mut s = base.filter(|_| patch).unwrap_or_default();
    for (f, v) in sent.into_iter().flatten() {
        // A PATCH's null clears the field (JSON merge patch); a PUT's is a value.
        if v.is_null() && patch {
            s.remove(f);
        } else {
            s.insert(f.clone(), v.clone());
        }
    }
    // The version sent is the one the write replaced: the answer's stands, or none (no If-Match
    // rather than a stale one). The client id was Ferry's, not the record's.
    s.remove(&cfg.version_property);
    if e.kind == Kind::Create {
        s.remove(&cfg.client_id_property);
    }
    s.extend(answer.unwrap_or_default());
    s
}

/// Whether the 2xx `answer` to update `e` is the record as the server holds it without what was
/// `sent`: a server that keeps the last writer's write (by `Ferry-Changed-At`, PROTOCOL.md
/// section 4) answers a write that lost with the record that won. Merged over what was sent, a
/// field the loser set and the winner lacks would stay here for good (no later read shows a
/// change of that record). It is so when the answer lacks a field that was sent (with a value),
/// and it is the whole record, not this write's: it names the very version the write was made
/// on; or it holds every field of the base the write did not send (a PATCH's); or it holds one
/// field at the value sent and another at a different one. Terse and partial answers (`{"id":
/// 7}`, the changed fields, a new `updatedAt` and nothing else) do none of these.
fn superseded(
    cfg: &CollectionConfig,
    e: &Entry,
    sent: &Map<String, Value>,
    base: Option<&Record>,
    answer: &Record,
    version: Option<&str>,
) -> bool {
    let own = |f: &String| {
        *f == cfg.id_property || *f == cfg.version_property || *f == cfg.client_id_property
    };
    let lacks = sent
        .iter()
        .any(|(f, v)| !v.is_null() && !own(f) && !answer.contains_key(f));
    if !lacks {
        return false;
    }
    let fields = || answer.iter().filter(|(f, _)| !own(f));
    let made_on = e.sent.iter().flat_map(|x| &x.headers).find_map(|(k, v)| {
        k.eq_ignore_ascii_case("If-Match")
            .then(|| v.trim().trim_matches('"'))
    });
    if made_on.is_some() && made_on == version && fields().next().is_some() {
        return true;
    }
    let mut rest = base
        .into_iter()
        .flatten()
        .filter(|(f, _)| !own(f) && !sent.contains_key(*f));
    let first = rest.next();
    if first.is_some()
        && first
            .into_iter()
            .chain(rest)
            .all(|(f, _)| answer.contains_key(f))
    {
        return true;
    }
    let echoed = |same: bool| fields().any(|(f, v)| sent.get(f).is_some_and(|s| (s == v) == same));
    echoed(true) && echoed(false)
}
