//! Queries in real Chromium against the reference server: a `refs` field matches by id (the
//! temporary id an app still holds after the record it names got the server's id, `"7"` for
//! `7`), a dotted name reaches a nested field, and tabs that differ in an index keep it.
#![cfg(target_arch = "wasm32")]

use ferry::api::Ferry;
use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "common/browser.rs"]
mod browser;
use browser::*;

async fn store(p: &str, t: &str, indexed: bool) -> Ferry {
    let indexes = if indexed {
        r#","indexes":["folderId"]"#
    } else {
        ""
    };
    let opts = js(&format!(
        r#"{{"name":"{}","autoSync":false,"collections":{{
            "{p}":{{"url":"{s}/api/{p}"}},
            "{t}":{{"url":"{s}/api/{t}","refs":{{"folderId":"{p}"}}{indexes}}}}}}}"#,
        unique("queries"),
        s = server()
    ));
    Ferry::open(opts).await.expect("open")
}

fn titles(v: JsValue) -> Vec<String> {
    let mut out: Vec<String> = Array::from(&v)
        .iter()
        .map(|r| get(&r, "title").as_string().unwrap_or_default())
        .collect();
    out.sort();
    out
}

#[wasm_bindgen_test]
async fn a_folder_made_offline_still_lists_its_notes_by_the_id_the_app_holds() {
    for indexed in [false, true] {
        let (p, t) = (unique("folders"), unique("notes"));
        let db = store(&p, &t, indexed).await;
        let (folders, notes) = (db.collection(&p).unwrap(), db.collection(&t).unwrap());
        let folder = ok(folders.create(js(r#"{"title":"F"}"#))).await;
        let tmp = get(&folder, "id").as_string().expect("a temporary id");
        let note = format!(r#"{{"title":"in F","folderId":"{tmp}","meta":{{"pinned":true}}}}"#);
        ok(notes.create(js(&note))).await;
        ok(notes.create(js(r#"{"title":"elsewhere","folderId":"none"}"#))).await;
        ok(db.sync()).await;
        let real = get(&ok(folders.get(tmp.clone().into())).await, "id");
        assert_ne!(real.as_string().as_deref(), Some(tmp.as_str()), "renamed");
        let by = |v: String| notes.query(js(&format!(r#"{{"where":{{"folderId":{v}}}}}"#)));
        let tmp_json = format!("\"{tmp}\"");
        assert_eq!(
            titles(ok(by(tmp_json)).await),
            ["in F"],
            "indexed: {indexed}"
        );
        let real_json = js_sys::JSON::stringify(&real).unwrap().as_string().unwrap();
        assert_eq!(titles(ok(by(real_json.clone())).await), ["in F"]);
        // The server's ids are numbers: the text of one (a `<select>`'s value) finds it too.
        if real.as_f64().is_some() {
            assert_eq!(titles(ok(by(format!("\"{real_json}\""))).await), ["in F"]);
        }
        let pinned = notes.query(js(r#"{"where":{"meta.pinned":true}}"#));
        assert_eq!(titles(ok(pinned).await), ["in F"], "a dotted name");
        db.close();
    }
}

/// Two tabs of one store whose configurations differ in an index (an older page still open):
/// neither upgrades the database back and forth, closing the other, and the index finds what
/// the tab without it wrote.
#[wasm_bindgen_test]
async fn tabs_that_differ_in_an_index_keep_it_and_both_stay_open() {
    let (name, t) = (unique("indexes"), unique("notes"));
    let open = |indexes: &str| {
        let opts = js(&format!(
            r#"{{"name":"{name}","autoSync":false,"collections":{{
                "{t}":{{"url":"{s}/api/{t}"{indexes}}}}}}}"#,
            s = server()
        ));
        Ferry::open(opts)
    };
    let newer = open(r#","indexes":["done"]"#).await.expect("open");
    let older = open("").await.expect("open");
    let (n, o) = (newer.collection(&t).unwrap(), older.collection(&t).unwrap());
    ok(o.create(js(r#"{"id":"a","title":"by the older tab","done":true}"#))).await;
    ok(n.create(js(r#"{"id":"b","title":"by the newer tab","done":false}"#))).await;
    let done = js(r#"{"where":{"done":true}}"#);
    assert_eq!(
        titles(ok(n.query(done.clone())).await),
        ["by the older tab"]
    );
    assert_eq!(
        titles(ok(o.query(done.clone())).await),
        ["by the older tab"]
    );
    // The older page reloads: it opens with its own configuration again.
    older.close();
    let older = open("").await.expect("reopen");
    assert_eq!(
        titles(ok(n.query(done)).await),
        ["by the older tab"],
        "still open"
    );
    older.close();
    newer.close();
}
