//! The JSON batch format of PROTOCOL.md section 6 (OData JSON batch), both ways.

use serde_json::{json, Map, Value};

use super::http::{HttpRequest, HttpResponse};

/// The body of a batch request carrying `requests` (ids are their positions, from "1").
pub fn encode(requests: &[HttpRequest]) -> String {
    let items: Vec<Value> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut headers = Map::new();
            headers.extend(
                r.headers
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("Content-Type"))
                    .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
            );
            let mut item = json!({ "id": (i + 1).to_string(), "method": r.method, "url": r.url, "headers": headers });
            if let Some(b) = &r.body {
                item["body"] = serde_json::from_str(b).unwrap_or(Value::String(b.clone()));
            }
            item
        })
        .collect();
    json!({ "requests": items }).to_string()
}

/// The answers of a batch, by request position; `None` where the server gave none (or one that
/// cannot be read). `Err` when the body is not a batch answer at all.
pub fn decode(body: &str, count: usize) -> Result<Vec<Option<HttpResponse>>, String> {
    let v: Value =
        super::json_body::parse(body).map_err(|e| format!("the batch answer is not JSON ({e})"))?;
    let list = v
        .get("responses")
        .and_then(Value::as_array)
        .ok_or_else(|| "the batch answer has no `responses` array".to_string())?;
    let mut out: Vec<Option<HttpResponse>> = vec![None; count];
    for item in list {
        let Some(id) = item.get("id").and_then(|id| {
            id.as_str()
                .map(str::to_string)
                .or_else(|| id.as_u64().map(|n| n.to_string()))
        }) else {
            continue;
        };
        // An answer to a request never sent (answers numbered from 0, say) means the others may
        // be misnumbered too: none of them can be trusted.
        let Some(pos) = id.parse::<usize>().ok().filter(|p| (1..=count).contains(p)) else {
            return Err(format!(
                "the batch answer answers request {id:?}, which was not sent"
            ));
        };
        // A number, or (PHP, a hand-written server) a string of one.
        let Some(status) = item
            .get("status")
            .and_then(|s| s.as_u64().or_else(|| s.as_str()?.trim().parse().ok()))
            .filter(|s| (100..=599).contains(s))
        else {
            continue;
        };
        let headers = item
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let body = match item.get("body") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        // A request answered twice: a success means the server applied it (a later failure
        // of the same request must not make it go again); otherwise the first answer stands.
        let slot = &mut out[pos - 1];
        if slot
            .as_ref()
            .is_none_or(|had| !(200..300).contains(&had.status) && (200..300).contains(&status))
        {
            *slot = Some(HttpResponse {
                status: status as u16,
                headers,
                body,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let reqs = vec![HttpRequest {
            method: "POST".into(),
            url: "/api/t".into(),
            headers: vec![
                ("Idempotency-Key".into(), "k".into()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: Some("{\"a\":1}".into()),
        }];
        let body = encode(&reqs);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["requests"][0]["body"]["a"], 1);
        assert_eq!(v["requests"][0]["headers"]["Idempotency-Key"], "k");
        let ans = decode(
            r#"{"responses":[{"id":"1","status":201,"body":{"id":"9"}},{"status":200}]}"#,
            1,
        )
        .unwrap();
        assert_eq!(ans[0].as_ref().unwrap().status, 201);
        assert!(decode(r#"{"responses":[{"id":"0","status":201}]}"#, 1).is_err());
        assert!(decode(r#"{"responses":[{"id":"2","status":201}]}"#, 1).is_err());
        assert!(decode("<html>", 1).is_err());
        let twice = |a: u16, b: u16| {
            let body =
                format!(r#"{{"responses":[{{"id":"1","status":{a}}},{{"id":"1","status":{b}}}]}}"#);
            decode(&body, 1).unwrap()[0].as_ref().unwrap().status
        };
        assert_eq!(
            (twice(201, 500), twice(500, 201), twice(422, 500)),
            (201, 201, 422)
        );
        assert_eq!(
            decode(r#"{"responses":[{"id":"1","status":"x"}]}"#, 1).unwrap(),
            vec![None]
        );
        let text = decode(r#"{"responses":[{"id":"1","status":"201"}]}"#, 1).unwrap();
        assert_eq!(text[0].as_ref().map(|r| r.status), Some(201));
    }
}
