//! What the server holds once it acknowledged a write: the answer merged over what was sent, or,
//! when the answer shows that the write was not stored (a server that keeps the last writer's
//! answers a write that lost with the record that won), the answer alone.

use serde_json::{Map, Value};

use crate::core::config::CollectionConfig;
use crate::core::mutation::{Entry, Kind};
use crate::core::record::Record;

/// What the server holds once it acknowledged `e` with `answer`:
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
) -> Record {
    let sent = match e.sent.as_ref().and_then(|x| x.body.as_ref()) {
        Some(Value::Object(sent)) => Some(sent),
        _ => None,
    };
    if let (Some(sent), Some(answer)) = (sent, &answer) {
        if e.kind == Kind::Update && superseded(cfg, e, sent, base.as_ref(), answer) {
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
/// field the loser added and the winner lacks would stay here for good (no later read shows a
/// change of that record; a field the loser only changed is overwritten by the answer anyway).
/// It is so when the answer lacks a field this write added (with a value), and holds every field
/// of the base the write left alone: the whole record, not an echo of the write. Terse and
/// partial answers (`{"id": 7}`, the changed fields, `updatedAt` and nothing else, a summary that
/// leaves out relations) lack some field of the base, and are merged.
fn superseded(
    cfg: &CollectionConfig,
    e: &Entry,
    sent: &Map<String, Value>,
    base: Option<&Record>,
    answer: &Record,
) -> bool {
    let Some(base) = base else {
        return false;
    };
    let own = |f: &String| {
        *f == cfg.id_property || *f == cfg.version_property || *f == cfg.client_id_property
    };
    let added_and_lacking = e.fields.iter().any(|f| {
        !own(f)
            && !base.contains_key(f)
            && sent.get(f).is_some_and(|v| !v.is_null())
            && !answer.contains_key(f)
    });
    if !added_and_lacking {
        return false;
    }
    let kept: Vec<&String> = base
        .keys()
        .filter(|f| !own(f) && !e.fields.contains(*f))
        .collect();
    !kept.is_empty() && kept.iter().all(|f| answer.contains_key(*f))
}
