//! An update acknowledged without a version (a 204, `{"ok": true}`, the record without its
//! version) is read back for it: without one, the next write would go without `If-Match` and
//! overwrite what others changed.

use crate::core::clock::Env;
use crate::core::config::CollectionConfig;
use crate::core::engine::Engine;
use crate::core::error::ErrorKind;
use crate::core::mutation::Entry;
use crate::core::record::Record;
use crate::core::storage::Storage;

use super::classify::{record_of, version_of, Verdict};
use super::http::{record_url, Transport};
use super::processing::{sends_under_key, RETRIED_READS};
use super::pull::get_request;
use super::report::Report;
use super::server_state::names;

impl<S: Storage, E: Env> Engine<S, E> {
    /// The acknowledgement of update `e` (answered with `rec`, without a version) with the
    /// record and version `GET {url}/{id}` gives; as it was when that read fails or has none.
    pub(super) async fn read_back<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        e: &Entry,
        rec: Option<Record>,
        report: &mut Report,
    ) -> Verdict {
        let Ok(cfg) = self.collection(&e.c) else {
            return Verdict::Ack(rec, None);
        };
        report.requests += 1;
        let req = get_request(&record_url(&cfg.url, &e.r), headers);
        match transport.send(req).await {
            Ok(res) if (200..300).contains(&res.status) => match record_of(cfg, &res) {
                Ok(Some(r)) if names(cfg, &r, &e.r) => {
                    let v = version_of(cfg, &res, Some(&r));
                    // Still at the version the write was sent over, and without it: the
                    // success was no answer to it (a proxy's, a garbled one). Adopted, the
                    // record would undo the write here too, without a word. A few sends
                    // under its key, then it is adopted all the same: a server that drops a
                    // field it does not know (or normalises a value) and keeps its version
                    // when nothing changed gives that answer every time.
                    let unseen =
                        super::said_no::at_sent_version(cfg, e, &r, &v) && !shows_sent(cfg, e, &r);
                    if unseen && sends_under_key(e) > RETRIED_READS {
                        self.warn_once(format!("unseen:{}", cfg.name), || {
                            format!(
                                "the server acknowledged updates of `{}` that its record, \
                                 read back, does not show (still at the version they were sent \
                                 over): taken as the server's word after {RETRIED_READS} sends",
                                cfg.name
                            )
                        });
                    } else if unseen {
                        return Verdict::Transient {
                            reason: "the server answered it with a success, but its record, \
                                     read back, is still at the version the write was sent \
                                     over, without it"
                                .into(),
                            retry_after: None,
                            kind: ErrorKind::Protocol,
                            status: None,
                        };
                    }
                    match v {
                        Some(v) => Verdict::Ack(Some(r), Some(v)),
                        None => Verdict::Ack(rec, None),
                    }
                }
                _ => Verdict::Ack(rec, None),
            },
            _ => Verdict::Ack(rec, None),
        }
    }
}

/// Whether record `found` shows the fields `e` changed: none of them at another value, and at
/// least one as sent (a value, or a removal). A changed field the record lacks altogether is no
/// proof either way (a server drops a field it does not know; another leaves empty ones out).
fn shows_sent(cfg: &CollectionConfig, e: &Entry, found: &Record) -> bool {
    let Some(body) = e.sent.as_ref().and_then(|s| s.body.as_ref()?.as_object()) else {
        return false;
    };
    let mut shown = false;
    for f in e.fields.iter().filter(|f| **f != cfg.version_property) {
        let Some(sent) = body.get(f) else { continue };
        match found.get(f) {
            Some(got) if got == sent => shown = true,
            Some(_) => return false,
            None if sent.is_null() => shown = true,
            None => {}
        }
    }
    shown
}
