//! The JS API in real Chromium with real IndexedDB: the README's quick start, errors, concurrent
//! calls, subscriptions and re-opening. Run by `wasm-pack test --headless --chrome`.
#![cfg(target_arch = "wasm32")]

use ferry::api::{Collection, Ferry};
use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn js(text: &str) -> JsValue {
    js_sys::JSON::parse(text).expect("test JSON")
}

fn unique(name: &str) -> String {
    format!("{name}-{}", (js_sys::Math::random() * 1e9) as u64)
}

async fn open(name: &str) -> Ferry {
    // autoSync off and no server: these tests are about the local store.
    let opts = js(&format!(
        r#"{{"name":"{name}","autoSync":false,"collections":{{
            "todos":{{"url":"/api/todos","indexes":["done"]}},
            "projects":{{"url":"/api/projects"}}}}}}"#
    ));
    Ferry::open(opts).await.expect("open")
}

async fn ok(p: Promise) -> JsValue {
    JsFuture::from(p).await.expect("promise resolves")
}

async fn err(p: Promise) -> js_sys::Error {
    let e = JsFuture::from(p).await.expect_err("promise rejects");
    e.dyn_into::<js_sys::Error>().expect("a real Error object")
}

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

#[wasm_bindgen_test]
async fn quick_start_from_the_readme() {
    let db = open(&unique("quick")).await;
    let todos: Collection = db.collection("todos").unwrap();
    let t = ok(todos.create(js(r#"{"title":"buy milk"}"#))).await;
    let id = get(&t, "id");
    assert!(
        id.as_string().unwrap().starts_with("tmp-"),
        "a temporary client id at once"
    );
    ok(todos.update(id.clone(), js(r#"{"done":true}"#))).await;
    let r = ok(todos.replace(id.clone(), js(r#"{"title":"buy oat milk"}"#))).await;
    assert_eq!(get(&r, "title"), "buy oat milk");
    assert!(
        get(&r, "done").is_undefined(),
        "replace removes fields it lacks"
    );
    let one = ok(todos.get(id.clone())).await;
    assert_eq!(get(&one, "title"), "buy oat milk");
    assert_eq!(Array::from(&ok(todos.all()).await).length(), 1);
    ok(todos.create_many(js(
        r#"[{"title":"b","done":false},{"title":"a","done":false},{"title":"c","done":true}]"#,
    )))
    .await;
    let open_items = Array::from(
        &ok(todos.query(js(
            r#"{"where":{"done":false},"orderBy":"title","limit":20}"#,
        )))
        .await,
    );
    let titles: Vec<String> = open_items
        .iter()
        .map(|r| get(&r, "title").as_string().unwrap())
        .collect();
    assert_eq!(titles, ["a", "b"]);
    ok(todos.delete(id.clone())).await;
    assert!(ok(todos.get(id)).await.is_undefined());
    // The first record's create+update+replace+delete coalesced away; three creates remain.
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(3.0));
    let outbox = Array::from(&ok(db.outbox()).await);
    assert_eq!(outbox.length(), 3);
    let first = outbox.get(0);
    assert_eq!(get(&first, "kind"), "create");
    assert!(get(&first, "mutationId")
        .as_string()
        .is_some_and(|s| !s.is_empty()));
    assert!(get(&first, "madeAt").as_f64().unwrap() > 1.6e12);
    db.close();
}

#[wasm_bindgen_test]
async fn bad_input_is_a_named_error_and_changes_nothing() {
    let db = open(&unique("bad")).await;
    let todos = db.collection("todos").unwrap();
    let cases: Vec<(JsValue, &str)> = vec![
        (JsValue::from_str("text"), "ValidationError"),
        (js("[1,2]"), "ValidationError"),
        (JsValue::NULL, "ValidationError"),
    ];
    for (v, name) in cases {
        assert_eq!(String::from(err(todos.create(v)).await.name()), name);
    }
    let bad_values: Vec<JsValue> = vec![
        Function::new_no_args("return 1").into(),
        js_sys::Symbol::for_("s").into(),
        js_sys::BigInt::from(5u32).into(),
        js_sys::Date::new_0().into(),
        JsValue::from_f64(f64::NAN),
    ];
    for v in bad_values {
        let rec = js_sys::Object::new();
        Reflect::set(&rec, &"x".into(), &v).unwrap();
        let e = err(todos.create(rec.into())).await;
        assert_eq!(String::from(e.name()), "ValidationError");
        assert!(
            String::from(e.message()).contains("`x`"),
            "the message names the field: {}",
            String::from(e.message())
        );
    }
    // A value deep in the record is named by its path.
    let deep_bad = js(r#"{"a":{"list":[1,{"b":2}]}}"#);
    let inner = Reflect::get(
        &Reflect::get(&deep_bad, &"a".into()).unwrap(),
        &"list".into(),
    )
    .unwrap();
    let item = Array::from(&inner).get(1);
    Reflect::set(&item, &"when".into(), &js_sys::Date::new_0().into()).unwrap();
    let e = err(todos.create(deep_bad)).await;
    assert!(
        String::from(e.message()).contains("`a.list[1].when` is a Date"),
        "{}",
        String::from(e.message())
    );
    let cyclic = js_sys::Object::new();
    Reflect::set(&cyclic, &"self".into(), &cyclic).unwrap();
    let e = err(todos.create(cyclic.into())).await;
    assert!(String::from(e.message()).contains("cycle"));
    // Nesting: what is accepted can also be read back, frozen and sent (the engine reads JSON
    // with a recursion limit); deeper is refused before anything is written.
    let nested = |levels: usize| {
        js(&format!(
            "{}1{}",
            r#"{"o":"#.repeat(levels),
            "}".repeat(levels)
        ))
    };
    let e = err(todos.create(nested(101))).await;
    assert_eq!(String::from(e.name()), "ValidationError");
    assert!(
        String::from(e.message()).contains("deeper than 100"),
        "{}",
        String::from(e.message())
    );
    let half = js_sys::Object::new();
    Reflect::set(
        &half,
        &"s".into(),
        &js_sys::JsString::from_char_code1(0xD83D),
    )
    .unwrap();
    let e = err(todos.create(half.into())).await;
    assert_eq!(String::from(e.name()), "ValidationError");
    assert!(
        String::from(e.message()).contains("`s`"),
        "{}",
        String::from(e.message())
    );
    let deep = ok(todos.create(nested(100))).await;
    ok(todos.update(get(&deep, "id"), js(r#"{"n":1}"#))).await;
    assert_eq!(Array::from(&ok(db.outbox()).await).length(), 1);
    ok(todos.delete(get(&deep, "id"))).await;
    assert_eq!(
        String::from(err(todos.update("nope".into(), js("{}"))).await.name()),
        "NotFoundError"
    );
    assert_eq!(
        String::from(err(todos.delete("nope".into())).await.name()),
        "NotFoundError"
    );
    let dup = ok(todos.create(js(r#"{"id":"x1"}"#))).await;
    assert_eq!(get(&dup, "id"), "x1");
    assert_eq!(
        String::from(err(todos.create(js(r#"{"id":"x1"}"#))).await.name()),
        "ConstraintError"
    );
    // createMany is all or nothing.
    let e = err(todos.create_many(js(r#"[{"id":"y1"},{"id":"x1"}]"#))).await;
    assert_eq!(String::from(e.name()), "ConstraintError");
    assert!(ok(todos.get("y1".into())).await.is_undefined());
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(1.0));
    let unknown = db
        .collection("nope")
        .err()
        .expect("unknown collection")
        .dyn_into::<js_sys::Error>()
        .unwrap();
    assert_eq!(String::from(unknown.name()), "UnknownCollectionError");
    assert_eq!(
        String::from(err(todos.query(js(r#"{"wher":{}}"#))).await.name()),
        "ValidationError"
    );
    let unnamed = db.collection_js(JsValue::UNDEFINED).err().expect("no name");
    assert_eq!(
        String::from(unnamed.unchecked_into::<js_sys::Error>().name()),
        "UnknownCollectionError"
    );
    // An id that is not a string (`r.id` passed for `r.mutationId`): a ValidationError.
    for p in [
        db.retry_rejected(JsValue::UNDEFINED, None),
        // A fix that is not an object of fields, for a mutation that exists or not.
        db.retry_rejected(JsValue::from_str("m"), Some(JsValue::from_f64(3.0))),
        db.discard_rejected(JsValue::from_f64(3.0)),
        db.resolve_conflict(JsValue::NULL, JsValue::NULL),
        db.discard_conflict(JsValue::UNDEFINED),
    ] {
        let e = err(p).await;
        assert_eq!(
            String::from(e.name()),
            "ValidationError",
            "{:?}",
            e.message()
        );
    }
    // `where: { done: undefined }` would match every record once JSON drops it.
    let q = js(r#"{"where":{"done":false}}"#);
    Reflect::set(&get(&q, "where"), &"done".into(), &JsValue::UNDEFINED).unwrap();
    let e = err(todos.query(q)).await;
    assert_eq!(String::from(e.name()), "ValidationError");
    assert!(String::from(e.message()).contains("where.done"));
    db.close();
    assert_eq!(String::from(err(todos.all()).await.name()), "ClosedError");
}

#[wasm_bindgen_test]
async fn what_json_holds_is_stored_as_json_writes_it() {
    // Records pass a quick check and then one plain `JSON.stringify`; these shapes must come
    // back exactly as JSON writes them, and those beside them still be refused by name.
    let db = open(&unique("plain")).await;
    let todos = db.collection("todos").unwrap();
    let make = |body: &str| Function::new_no_args(&format!("return {body}")).call0(&JsValue::NULL);
    let rec = make(
        r#"(() => { const bare = Object.create(null); bare.k = [1, null, "é😀"];
            return { id: "p1", bare, gone: undefined, nested: [[[]], {}], z: -0, big: 1e21,
                     flag: false, text: "a\"b\n" }; })()"#,
    )
    .unwrap();
    let stored = ok(todos.create(rec)).await;
    let want = r#"{"id":"p1","bare":{"k":[1,null,"é😀"]},"nested":[[[]],{}],"z":0,"big":1e+21,"flag":false,"text":"a\"b\n"}"#;
    let read = ok(todos.get("p1".into())).await;
    for v in [&stored, &read] {
        let text = js_sys::JSON::stringify(v).unwrap().as_string().unwrap();
        let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
        assert_eq!(parse(&text), parse(want), "{text}");
    }
    for (body, field) in [
        ("{ id: 'p2', list: [1, , 3] }", "`list[1]`"),
        ("{ id: 'p3', m: new Map() }", "`m`"),
        ("{ id: 'p4', s: new String('x') }", "`s`"),
        ("{ id: 'p6', a: [undefined] }", "`a[0]`"),
    ] {
        let e = err(todos.create(make(body).unwrap())).await;
        assert_eq!(String::from(e.name()), "ValidationError", "{body}");
        assert!(
            String::from(e.message()).contains(field),
            "{body}: {}",
            String::from(e.message())
        );
    }
    assert_eq!(ok(db.pending_count()).await.as_f64(), Some(1.0));
    db.close();
}

#[wasm_bindgen_test]
async fn concurrent_calls_from_js_both_work() {
    let db = open(&unique("conc")).await;
    let todos = db.collection("todos").unwrap();
    let a = todos.create(js(r#"{"n":1}"#));
    let b = todos.create(js(r#"{"n":2}"#));
    let c = todos.all();
    let both = Promise::all(&Array::of3(&a, &b, &c));
    ok(both).await;
    assert_eq!(Array::from(&ok(todos.all()).await).length(), 2);
    db.close();
}

#[wasm_bindgen_test]
async fn subscribers_hear_each_committed_change_until_they_stop() {
    let db = open(&unique("subs")).await;
    let todos = db.collection("todos").unwrap();
    let seen = Array::new();
    let sink = seen.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |c: JsValue| {
        sink.push(&c);
    })
    .into_js_value();
    let off: Function = todos
        .subscribe(f.unchecked_into())
        .unwrap()
        .unchecked_into();
    let t = ok(todos.create(js(r#"{"a":1}"#))).await;
    ok(todos.update(get(&t, "id"), js(r#"{"a":2}"#))).await;
    // A failed write announces nothing.
    let _ = JsFuture::from(todos.update("missing".into(), js("{}"))).await;
    ok(todos.delete(get(&t, "id"))).await;
    off.call0(&JsValue::NULL).unwrap();
    ok(todos.create(js(r#"{"a":3}"#))).await;
    let kinds: Vec<String> = seen
        .iter()
        .map(|c| get(&c, "type").as_string().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "updated", "deleted"]);
    assert_eq!(get(&get(&seen.get(1), "record"), "a"), 2);
    db.close();
}

/// A number the app uses as an id finds its record whichever way it comes in: in the record,
/// as an argument, written `17` or `17.0`, up to the largest numbers JS holds exactly.
#[wasm_bindgen_test]
async fn numeric_ids_find_their_records() {
    let db = open(&unique("numids")).await;
    let todos = db.collection("todos").unwrap();
    for n in [17.0, 1e16, 9007199254740992.0] {
        let rec = js(r#"{"title":"n"}"#);
        Reflect::set(&rec, &"id".into(), &JsValue::from_f64(n)).unwrap();
        ok(todos.create(rec)).await;
        let found = ok(todos.get(JsValue::from_f64(n))).await;
        assert_eq!(get(&found, "id").as_f64(), Some(n), "get({n})");
        ok(todos.update(JsValue::from_f64(n), js(r#"{"title":"m"}"#))).await;
        ok(todos.delete(JsValue::from_f64(n))).await;
    }
    db.close();
}

/// `all()` and `query()` list numeric ids by value, then string ids (rows are keyed by the id's
/// text, which would put 10 before 9).
#[wasm_bindgen_test]
async fn records_come_in_id_order_numbers_by_value() {
    let db = open(&unique("idorder")).await;
    let todos = db.collection("todos").unwrap();
    for id in ["10", "\"b\"", "9", "2", "\"a\"", "1.5", "-1"] {
        ok(todos.create(js(&format!(r#"{{"id":{id},"done":false}}"#)))).await;
    }
    let ids = |v: JsValue| {
        js_sys::JSON::stringify(&Array::from(&v).map(&mut |r, _, _| get(&r, "id")))
            .unwrap()
            .as_string()
            .unwrap()
    };
    let want = r#"[-1,1.5,2,9,10,"a","b"]"#;
    assert_eq!(ids(ok(todos.all()).await), want);
    let q = |text: &str| ok(todos.query(js(text)));
    assert_eq!(ids(q(r#"{"limit":3}"#).await), "[-1,1.5,2]");
    assert_eq!(
        ids(q(r#"{"desc":true,"limit":3}"#).await),
        r#"["b","a",10]"#
    );
    assert_eq!(
        ids(q(r#"{"where":{"done":false}}"#).await),
        want,
        "through the index"
    );
    let by_id = ids(q(r#"{"where":{"id":"9"}}"#).await);
    assert_eq!(by_id, "[9]", "by id, as get finds it");
    assert_eq!(ids(q(r#"{"where":{"id":9,"done":true}}"#).await), "[]");
    db.close();
}

/// Numbers come back exactly as written: JSON text has the shortest digits that name a double,
/// and reading them back must find that same double, not its neighbour.
#[wasm_bindgen_test]
async fn numbers_come_back_exactly() {
    let db = open(&unique("floats")).await;
    let todos = db.collection("todos").unwrap();
    let tricky = [
        0.130_720_535_741_294_39,
        1e15 + 0.5,
        3e30,
        123_456_789_012_345_680_000.0,
        5e-324,
        1.797_693_134_862_315_7e308,
        0.1 + 0.2,
        -2.225_073_858_507_201e-308,
    ];
    for (i, x) in tricky.into_iter().enumerate() {
        let rec = js(&format!(r#"{{"id":"f{i}"}}"#));
        Reflect::set(&rec, &"n".into(), &JsValue::from_f64(x)).unwrap();
        let made = ok(todos.create(rec)).await;
        assert_eq!(get(&made, "n").as_f64(), Some(x), "create answered {x}");
        let found = ok(todos.get(format!("f{i}").into())).await;
        assert_eq!(get(&found, "n").as_f64(), Some(x), "get gave back {x}");
    }
    db.close();
}

/// The function `subscribe` and `on` return can be called again, and after `close()`.
#[wasm_bindgen_test]
async fn unsubscribing_twice_does_nothing() {
    let db = open(&unique("unsub")).await;
    let todos = db.collection("todos").unwrap();
    let f = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {}).into_js_value();
    let off: Function = todos
        .subscribe(f.unchecked_into())
        .unwrap()
        .unchecked_into();
    off.call0(&JsValue::NULL).expect("the first call");
    off.call0(&JsValue::NULL)
        .expect("a second call does nothing");
    db.close();
    off.call0(&JsValue::NULL).expect("nor after close");
}

/// A listener or callback that is not a function is refused when it is given, not reported as a
/// `TypeError` at every event; and a closed store refuses new collections, listeners and the
/// offline switch, which would otherwise do nothing.
#[wasm_bindgen_test]
async fn callbacks_must_be_functions_and_a_closed_store_says_so() {
    let name = unique("callbacks");
    let db = open(&name).await;
    let todos = db.collection("todos").unwrap();
    let name_of = |e: JsValue| String::from(e.unchecked_into::<js_sys::Error>().name());
    let not_fn: Function = JsValue::from_str("oops").unchecked_into();
    assert_eq!(
        name_of(todos.subscribe(not_fn.clone()).unwrap_err()),
        "ValidationError"
    );
    assert_eq!(
        name_of(db.on("change", not_fn).unwrap_err()),
        "ValidationError"
    );
    for option in ["getHeaders", "resolveConflict"] {
        let opts = js(&format!(
            r#"{{"name":"{name}-o","{option}":5,"collections":{{"t":{{"url":"/api/t"}}}}}}"#
        ));
        let e = Ferry::open(opts).await.err().expect(option);
        assert_eq!(name_of(e), "ValidationError", "{option}");
    }
    db.close();
    let f = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {}).into_js_value();
    let closed = [
        db.collection("todos").err(),
        todos.subscribe(f.clone().unchecked_into()).err(),
        db.on("change", f.unchecked_into()).err(),
        db.set_offline(true.into()).err(),
    ];
    for (i, e) in closed.into_iter().enumerate() {
        assert_eq!(
            name_of(e.expect("refused after close")),
            "ClosedError",
            "call {i}"
        );
    }
}

#[wasm_bindgen_test]
async fn reopening_keeps_records_outbox_and_temporary_ids() {
    let name = unique("reopen");
    let db = open(&name).await;
    let todos = db.collection("todos").unwrap();
    let t = ok(todos.create(js(r#"{"title":"kept"}"#))).await;
    ok(todos.update(get(&t, "id"), js(r#"{"done":false}"#))).await;
    let before = js_sys::JSON::stringify(&ok(db.outbox()).await).unwrap();
    db.close();
    let db = open(&name).await;
    let todos = db.collection("todos").unwrap();
    let again = ok(todos.get(get(&t, "id"))).await;
    assert_eq!(get(&again, "title"), "kept");
    assert_eq!(
        js_sys::JSON::stringify(&ok(db.outbox()).await).unwrap(),
        before
    );
    // New temporary ids never collide with the ones made before the reload.
    let u = ok(todos.create(js(r#"{"title":"new"}"#))).await;
    assert_ne!(get(&u, "id"), get(&t, "id"));
    db.close();
}
