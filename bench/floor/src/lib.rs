//! The floor: the chosen crates doing one of each thing Ferry does (open a database with a store
//! and an index, write a JSON record and read it back in transactions, one fetch, JSON both ways,
//! an async function exported to JS). Nothing else.
use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

#[derive(Serialize, Deserialize)]
struct Entry {
    seq: u64,
    id: String,
    kind: String,
    fields: Vec<String>,
    body: Option<serde_json::Value>,
}

#[wasm_bindgen]
pub async fn roundtrip(name: String, url: String, record: String) -> Result<String, JsValue> {
    let err = |e: &dyn std::fmt::Display| JsValue::from_str(&e.to_string());
    let db = Database::open(&name)
        .with_version(1u8)
        .with_on_upgrade_needed(|_, db: Database| {
            let s = db.create_object_store("records").build()?;
            s.create_index("cat", "cat".into()).build()?;
            db.create_object_store("outbox").build()?;
            Ok(())
        })
        .await
        .map_err(|e| err(&e))?;
    let v: serde_json::Value = serde_json::from_str(&record).map_err(|e| err(&e))?;
    let e = Entry {
        seq: 1,
        id: "n-1".into(),
        kind: "create".into(),
        fields: vec![],
        body: Some(v.clone()),
    };
    let tx = db
        .transaction(["records", "outbox"])
        .with_mode(TransactionMode::Readwrite)
        .build()
        .map_err(|e| err(&e))?;
    let rec = js_sys::JSON::parse(&record)?;
    tx.object_store("records")
        .map_err(|e| err(&e))?
        .put(&rec)
        .with_key("k")
        .build()
        .map_err(|e| err(&e))?;
    let ent = js_sys::JSON::parse(&serde_json::to_string(&e).map_err(|e| err(&e))?)?;
    tx.object_store("outbox")
        .map_err(|e| err(&e))?
        .put(&ent)
        .with_key(1u32)
        .build()
        .map_err(|e| err(&e))?;
    tx.commit().await.map_err(|e| err(&e))?;
    let tx = db.transaction("records").build().map_err(|e| err(&e))?;
    let got: Option<JsValue> = tx
        .object_store("records")
        .map_err(|e| err(&e))?
        .get("k")
        .primitive()
        .map_err(|e| err(&e))?
        .await
        .map_err(|e| err(&e))?;
    let resp = gloo_net::http::Request::post(&url)
        .header("Idempotency-Key", &e.id)
        .body(serde_json::to_string(&e).map_err(|e| err(&e))?)
        .map_err(|e| err(&e))?
        .send()
        .await
        .map_err(|e| err(&e))?;
    let text = resp.text().await.map_err(|e| err(&e))?;
    let back: Entry = serde_json::from_str(&text).map_err(|e| err(&e))?;
    Ok(format!("{} {} {:?}", back.id, got.is_some(), back.fields))
}
