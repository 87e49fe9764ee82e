//! Answers reshaped on the way, as servers of other styles give them: Sencha's (`"success"`
//! in every answer, refusals as 200s, lists paged as `{success, total, data}` asked with
//! `start`) and offset-paged lists (Feathers' `{total, limit, skip, data}`, asked with `$skip`).

use ferry::core::sync::http::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

/// Records per page of a paged list: small, so that most lists take several pages.
pub const PAGE: usize = 4;

/// `r` as a server written for Sencha's proxies answers: a refusal, and "not found", is a 200
/// that says `"success": false`; a record or a list comes with `"success": true`.
pub fn as_sencha(mut r: HttpResponse) -> HttpResponse {
    if matches!(r.status, 404 | 410 | 422) {
        let said = if r.status == 422 {
            "refused by the simulator"
        } else {
            "not found"
        };
        r.status = 200;
        r.body = json!({"success": false, "message": said}).to_string();
        return r;
    }
    if !(200..300).contains(&r.status) {
        return r;
    }
    r.body = match serde_json::from_str::<Value>(&r.body) {
        Ok(Value::Object(mut m)) if m.get("data").is_some_and(|d| d.is_array()) => {
            m.insert("success".into(), true.into());
            Value::Object(m).to_string()
        }
        Ok(v @ (Value::Object(_) | Value::Array(_))) => {
            json!({"success": true, "data": v}).to_string()
        }
        _ => return r,
    };
    r
}

/// The offset asked of a read of a whole collection (`GET /api/{c}[?…]`): Feathers' `$skip`
/// or Sencha's `start`, 0 without one; none for any other request.
pub fn page_skip(req: &HttpRequest) -> Option<usize> {
    let (path, query) = req.url.split_once('?').unwrap_or((&req.url, ""));
    if req.method != "GET" || path.matches('/').count() != 2 {
        return None;
    }
    Some(
        query
            .split('&')
            .find_map(|p| {
                p.strip_prefix("$skip=")
                    .or_else(|| p.strip_prefix("start="))
            })
            .map_or(0, |v| v.parse().unwrap_or(0)),
    )
}

/// The page at `skip` of a list answered whole (a bare array), with the list's length now:
/// Feathers' `{total, limit, skip, data}`, or Sencha's `{total, data}` (`success` is added on
/// the way, `as_sencha`).
pub fn as_page(mut r: HttpResponse, skip: usize, sencha: bool) -> HttpResponse {
    if r.status != 200 {
        return r;
    }
    let Ok(Value::Array(all)) = serde_json::from_str::<Value>(&r.body) else {
        return r;
    };
    let total = all.len();
    let data: Vec<Value> = all.into_iter().skip(skip).take(PAGE).collect();
    r.body = if sencha {
        json!({"total": total, "data": data})
    } else {
        json!({"total": total, "limit": PAGE, "skip": skip, "data": data})
    }
    .to_string();
    r
}
