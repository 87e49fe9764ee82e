//! A create with an id the app chose, in real Chromium against the reference server: its checks
//! go out with its writes and it commits before the writes are answered, so an id already taken
//! by a synced record (no alias, nothing pending: only the row's add can find it) must still
//! fail whole, with the error the general path gives, before the writes called after it run.
#![cfg(target_arch = "wasm32")]

use ferry::api::Ferry;
use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

#[wasm_bindgen(inline_js = r#"
const done = (r) => new Promise((ok, fail) => { r.onsuccess = () => ok(r.result); r.onerror = () => fail(r.error); });
// Takes database `name` back to the layout before ghosts: no `ghosts` store, none laid, and an
// alias under an app's id and one under a temporary id of Ferry's, as such a database may hold.
export async function unghost(name, c) {
  const db = await done(indexedDB.open(name));
  const version = db.version;
  db.close();
  const r = indexedDB.open(name, version + 1);
  r.onupgradeneeded = () => {
    const db = r.result, t = r.transaction;
    db.deleteObjectStore('ghosts');
    t.objectStore('r:' + c).clear();
    t.objectStore('aliases').put('y-now', [c, 'y']);
    t.objectStore('aliases').put('z-now', [c, 'tmp-abc-0000000001']);
  };
  (await done(r)).close();
}
// What the records store of `c` holds under each of `keys`.
export async function stored(name, c, keys) {
  const db = await done(indexedDB.open(name));
  const s = db.transaction('r:' + c).objectStore('r:' + c);
  const out = await Promise.all(keys.map((k) => done(s.get(k))));
  db.close();
  return out;
}
"#)]
extern "C" {
    fn unghost(name: &str, c: &str) -> Promise;
    fn stored(name: &str, c: &str, keys: Array) -> Promise;
}

wasm_bindgen_test_configure!(run_in_browser);

#[path = "common/browser.rs"]
mod browser;
use browser::*;

fn text(v: &JsValue) -> String {
    v.as_string().unwrap_or_default()
}

#[wasm_bindgen_test]
async fn a_create_under_a_synced_records_id_fails_whole() {
    let t = unique("taken");
    let url = format!("{}/api/{t}", server());
    let opts = js(&format!(
        r#"{{"name":"{t}","autoSync":false,"collections":{{"{t}":{{"url":"{url}"}}}}}}"#
    ));
    http("POST", &format!("/api/{t}"), Some(r#"{"title":"theirs"}"#)).await;
    let db = Ferry::open(opts).await.expect("open");
    let col = db.collection(&t).unwrap();
    ok(col.pull(None)).await;
    let all = Array::from(&ok(col.all()).await);
    assert_eq!(all.length(), 1);
    let id = get(&all.get(0), "id");
    let id_text = id
        .as_string()
        .unwrap_or_else(|| format!("{}", id.as_f64().unwrap()));
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(0.0));

    // A first write reserves the block of outbox positions that quick creates take theirs from.
    ok(col.create(js(r#"{"id":"free-0"}"#))).await;
    // Called together, as an app that does not wait would: the taken one, a delete of that
    // record, then a free one. The create fails before the delete runs (had it been retried
    // after, it would have succeeded over the pending delete).
    let taken = col.create(js(&format!(
        r#"{{"id":{id:?},"title":"mine"}}"#,
        id = id_text
    )));
    let delete = col.delete(id.clone());
    let free = col.create(js(r#"{"id":"free-1","title":"new"}"#));
    let failed = fails(taken).await;
    assert!(failed.contains("ConstraintError"), "{failed}");
    assert!(failed.contains("already has a record"), "{failed}");
    ok(delete).await;
    ok(free).await;

    assert!(
        ok(col.get(id.clone())).await.is_undefined(),
        "deleted, not created again"
    );
    let outbox = Array::from(&ok(db.outbox()).await);
    let mut pending: Vec<(String, String)> = outbox
        .iter()
        .map(|e| (text(&get(&e, "kind")), text(&get(&e, "recordId"))))
        .collect();
    pending.sort();
    let mut want = [
        ("create", "free-0"),
        ("create", "free-1"),
        ("delete", id_text.as_str()),
    ]
    .map(|(k, r)| (k.to_string(), r.to_string()));
    want.sort();
    assert_eq!(
        pending, want,
        "the free creates and the delete, nothing of the failed create"
    );
    ok(db.sync()).await;
    let on_server = server_records(&t).await;
    assert_eq!(
        on_server.length(),
        2,
        "the two free creates; the synced record deleted"
    );
    db.close();
}

/// A database from before ghosts (a delete pending, an alias under an app's id) gets them in the
/// upgrade that opens it: the create under the deleted record's id is then folded into the
/// pending delete, as it was before ghosts, not queued as a second create the server would
/// refuse.
#[wasm_bindgen_test]
async fn a_database_from_before_ghosts_gets_them_when_opened() {
    let t = unique("unghosted");
    let url = format!("{}/api/{t}", server());
    let opts = || {
        js(&format!(
            r#"{{"name":"{t}","autoSync":false,"collections":{{"{t}":{{"url":"{url}"}}}}}}"#
        ))
    };
    let db = Ferry::open(opts()).await.expect("open");
    let col = db.collection(&t).unwrap();
    ok(col.create(js(r#"{"id":"x","title":"first"}"#))).await;
    ok(db.sync()).await;
    ok(col.delete(JsValue::from_str("x"))).await;
    db.close();
    JsFuture::from(unghost(&t, &t)).await.expect("unghost");
    let keys = || Array::of3(&"x".into(), &"y".into(), &"tmp-abc-0000000001".into());
    let before = Array::from(&JsFuture::from(stored(&t, &t, keys())).await.unwrap());
    assert!(before.iter().all(|v| v.is_undefined()), "no ghosts");

    let db = Ferry::open(opts()).await.expect("reopen");
    let col = db.collection(&t).unwrap();
    let after = Array::from(&JsFuture::from(stored(&t, &t, keys())).await.unwrap());
    let ghost = |v: JsValue| {
        v.is_object() && get(&v, "g").as_f64() == Some(1.0) && get(&v, "d").is_undefined()
    };
    assert!(
        ghost(after.get(0)),
        "the pending delete's id: {:?}",
        after.get(0)
    );
    assert!(
        ghost(after.get(1)),
        "the alias's app id: {:?}",
        after.get(1)
    );
    assert!(
        after.get(2).is_undefined(),
        "Ferry's temporary ids get none"
    );
    assert!(ok(col.get(JsValue::from_str("x"))).await.is_undefined());
    assert_eq!(
        Array::from(&ok(col.all()).await).length(),
        0,
        "ghosts are no records"
    );

    ok(col.create(js(r#"{"id":"x","title":"again"}"#))).await;
    let outbox = Array::from(&ok(db.outbox()).await);
    assert_eq!(outbox.length(), 1, "one change of x");
    assert_eq!(text(&get(&outbox.get(0), "kind")), "update");
    ok(db.sync()).await;
    let on_server = server_records(&t).await;
    assert_eq!(on_server.length(), 1);
    assert_eq!(text(&get(&on_server.get(0), "title")), "again");
    db.close();
}
