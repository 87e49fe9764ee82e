//! The app's conflict resolver (`resolveConflict` in the options) for collections whose policy
//! is `custom`: it gets `{ collection, id, kind, base, local, server }` and returns the record
//! to keep, `null` to delete it, or `"defer"` to decide later (`db.conflicts()`). A throw or any
//! other answer leaves the conflict listed as failed, with the reason.

use std::rc::Rc;

use js_sys::Promise;
use serde_json::json;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::core::sync::report::{ConflictState, OpenConflict, Resolution};

use super::convert::{describe, from_js_error, to_js, to_record};
use super::ferry::Inner;

impl Inner {
    /// Offers every open conflict to the resolver; returns whether any was settled.
    pub(crate) async fn offer_conflicts(self: &Rc<Self>) -> bool {
        let Some(resolver) = self.resolver.clone() else {
            return false;
        };
        let Ok(open) = self.engine.conflicts().await else {
            return false;
        };
        let mut settled = false;
        for c in open.into_iter().filter(|c| c.state == ConflictState::Open) {
            // Closed, or the lead handed on, while the resolver was asked about the one before:
            // no more dialogs here (the tab that leads offers them).
            if self.engine.is_closed() || !self.sync.borrow().leader {
                break;
            }
            // A resolver may take its time (a dialog), or never answer: runs that end meanwhile
            // offer the other conflicts, never one it was asked about already.
            let id = c.conflict_id.clone();
            if self.offered.borrow().contains(&id) {
                continue;
            }
            self.offered.borrow_mut().push(id);
            let answer = ask(&resolver, &c).await;
            let outcome = match answer {
                Ok(v) if v.as_string().as_deref() == Some("defer") => {
                    Err((ConflictState::Deferred, None))
                }
                Ok(v) if v.is_null() => Ok(Resolution::Delete),
                Ok(v) if v.is_object() => match to_record(&v, "the resolver's record") {
                    Ok(r) => Ok(Resolution::Record(r)),
                    Err(e) => Err((ConflictState::Failed, Some(e.message))),
                },
                Ok(v) => Err((
                    ConflictState::Failed,
                    Some(format!(
                        "the resolver returned {}; expected a record, null or \"defer\"",
                        describe(&v)
                    )),
                )),
                Err(e) => Err((ConflictState::Failed, Some(e))),
            };
            match outcome {
                Ok(resolution) => {
                    match self
                        .engine
                        .resolve_conflict(&c.conflict_id, resolution)
                        .await
                    {
                        Ok(report) => {
                            self.tell(&report);
                            settled = true;
                        }
                        // Still open: offered again after the next run.
                        Err(_) => self.offered.borrow_mut().retain(|x| *x != c.conflict_id),
                    }
                }
                Err((state, error)) => {
                    let _ = self
                        .engine
                        .mark_conflict(&c.conflict_id, state, error)
                        .await;
                }
            }
        }
        settled
    }
}

async fn ask(resolver: &js_sys::Function, c: &OpenConflict) -> Result<JsValue, String> {
    let arg = to_js(&json!({
        "collection": c.collection, "id": c.record_id, "kind": c.kind,
        "base": c.base, "local": c.local, "server": c.server,
    }));
    let v = resolver
        .call1(&JsValue::NULL, &arg)
        .map_err(|e| from_js_error(e, crate::core::ErrorKind::Conflict).message)?;
    JsFuture::from(Promise::resolve(&v))
        .await
        .map_err(|e| from_js_error(e, crate::core::ErrorKind::Conflict).message)
}
