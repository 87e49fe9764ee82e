//! Mistakes a newcomer makes get an error that says what is wrong, and change nothing. Each
//! of these passed silently, or with a message that sent the developer the wrong way, before.
//! Run by `wasm-pack test --headless --chrome`.
#![cfg(target_arch = "wasm32")]

use ferry::api::Ferry;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn unique(name: &str) -> String {
    format!("{name}-{}", (js_sys::Math::random() * 1e9) as u64)
}

/// A JS value made by an expression (for what JSON cannot write: functions, prototypes).
fn make(expr: &str) -> JsValue {
    Function::new_no_args(&format!("return {expr}"))
        .call0(&JsValue::NULL)
        .expect("test expression")
}

fn options(name: &str, extra: &str) -> JsValue {
    make(&format!(
        "{{ name: '{name}', autoSync: false, collections: {{ todos: {{ url: '/api/todos', indexes: ['done'] }} }} {extra} }}"
    ))
}

/// The error's name and message.
fn said(e: JsValue) -> (String, String) {
    let e: js_sys::Error = e.dyn_into().expect("a real Error object");
    (e.name().into(), e.message().into())
}

async fn refused(p: Promise) -> (String, String) {
    said(JsFuture::from(p).await.expect_err("refused"))
}

fn assert_says((name, message): (String, String), words: &[&str]) {
    assert_eq!(name, "ValidationError", "{message}");
    for w in words {
        assert!(message.contains(w), "{w:?} not in {message:?}");
    }
}

#[wasm_bindgen_test]
async fn a_misspelt_function_option_is_named_as_unknown() {
    let name = unique("typo");
    for typo in ["getheaders", "onConflict"] {
        let opts = options(&name, &format!(", {typo}: async () => ({{}})"));
        let e = Ferry::open(opts).await.err().expect(typo);
        assert_says(
            said(e),
            &[&format!("unknown option `{typo}`"), "`getHeaders`"],
        );
    }
    // Any other unknown option lists the two that take functions beside the fields.
    let e = Ferry::open(options(&name, ", colections: {}"))
        .await
        .err()
        .unwrap();
    assert_says(
        said(e),
        &["unknown field `colections`", "`resolveConflict`"],
    );
}

#[wasm_bindgen_test]
async fn set_offline_takes_a_boolean_and_nothing_else() {
    let db = Ferry::open(options(&unique("offline"), "")).await.unwrap();
    // `"true"` from localStorage went in as `false` (the glue's ToInt32), and the store sent.
    for v in [
        JsValue::from_str("true"),
        JsValue::from_f64(1.0),
        JsValue::UNDEFINED,
    ] {
        assert_says(
            said(db.set_offline(v).unwrap_err()),
            &["setOffline takes true or false"],
        );
    }
    let online = |db: &Ferry| {
        let status = db.status();
        async move {
            let s = JsFuture::from(status).await.unwrap();
            js_sys::Reflect::get(&s, &"online".into())
                .unwrap()
                .as_bool()
        }
    };
    assert_eq!(online(&db).await, Some(true), "none of them was taken");
    db.set_offline(true.into()).unwrap();
    assert_eq!(online(&db).await, Some(false));
    db.close();
}

#[wasm_bindgen_test]
async fn queries_say_what_they_cannot_do() {
    let db = Ferry::open(options(&unique("queries"), "")).await.unwrap();
    let todos = db.collection("todos").unwrap();
    JsFuture::from(todos.create(make("{ id: 'a', n: 2, done: true, meta: { $ref: '#/x' } }")))
        .await
        .unwrap();
    // Operators as Mongo and PouchDB write them matched nothing, without a word.
    for q in [
        "{ where: { n: { $gt: 1 } } }",
        "{ where: { done: { $in: [true] } } }",
    ] {
        assert_says(
            refused(todos.query(make(q))).await,
            &["operator", "equal values only"],
        );
    }
    // An object value is still a value to compare, also one whose key starts with `$`.
    let hits = JsFuture::from(todos.query(make("{ where: { meta: { $ref: '#/x' } } }")))
        .await
        .unwrap();
    assert_eq!(js_sys::Array::from(&hits).length(), 1);
    assert_says(
        refused(todos.query(JsValue::NULL)).await,
        &["the query must be a plain object, got null"],
    );
    assert_says(
        refused(todos.query(make("{ limit: -1 }"))).await,
        &["a whole number, 0 or more"],
    );
    db.close();
}

#[wasm_bindgen_test]
async fn records_json_would_change_are_refused_by_name() {
    let db = Ferry::open(options(&unique("records"), "")).await.unwrap();
    let todos = db.collection("todos").unwrap();
    for (record, words) in [
        // `"\ud83d"` as a field name: "unexpected end of hex escape" before.
        (
            "{ id: 'k1', ['cut \\ud83d']: 1 }",
            &["field name", "surrogate"][..],
        ),
        // Stored as what toJSON returned, or failed inside the glue when that was undefined.
        (
            "{ id: 'k2', when: { toJSON() { return 'x'; } } }",
            &["`when`", "toJSON"][..],
        ),
        (
            "{ id: 'k3', toJSON() { return undefined; } }",
            &["toJSON"][..],
        ),
        // "is a Object, not a plain object" before.
        (
            "{ id: 'k5', list: Object.assign([1], { toJSON() { return 'x'; } }) }",
            &["`list`", "toJSON"][..],
        ),
        (
            "{ id: 'k4', p: Object.create({ inherited: 1 }) }",
            &["`p`", "a prototype of its own"][..],
        ),
    ] {
        assert_says(refused(todos.create(make(record))).await, words);
    }
    let q = make("{ where: { ['cut \\ud83d']: 1 } }");
    assert_says(refused(todos.query(q)).await, &["surrogate"]);
    assert_eq!(
        JsFuture::from(db.pending_count()).await.unwrap().as_f64(),
        Some(0.0)
    );
    db.close();
}
