//! Static files, CORS, persistence in a SQLite file, and stopping on signals.

mod common;

use common::Server;
use serde_json::json;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferry-server-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn static_files_and_pkg_without_traversal() {
    let root = temp_dir("static");
    let www = root.join("www");
    fs::create_dir_all(www.join("sub")).unwrap();
    fs::create_dir_all(root.join("pkg")).unwrap();
    fs::write(www.join("index.html"), "<h1>demo</h1>").unwrap();
    fs::write(www.join("app.mjs"), "export {}").unwrap();
    fs::write(www.join("sub/index.html"), "sub").unwrap();
    fs::write(www.join("a b.txt"), "spaced").unwrap();
    fs::write(root.join("pkg/ferry_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    fs::write(root.join("pkg/ferry.js"), "export default 1").unwrap();
    fs::write(root.join("secret.txt"), "secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("secret.txt"), www.join("link.txt")).unwrap();

    let s = Server::start(&["--static", www.to_str().unwrap()]);
    let r = s.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>demo</h1>"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = s.get("/app.mjs");
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(s.get("/sub/").text(), "sub");
    assert_eq!(s.get("/sub").text(), "sub");
    assert_eq!(s.get("/a%20b.txt").text(), "spaced");
    let r = s.get("/pkg/ferry_bg.wasm");
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/wasm"))
    );
    assert_eq!(r.body, b"\0asm\x01\0\0\0");
    assert_eq!(s.get("/pkg/ferry.js").text(), "export default 1");
    assert_eq!(s.req("HEAD", "/app.mjs").send().status, 200);

    for evil in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/pkg/../../secret.txt",
        "/pkg/%2e%2e/secret.txt",
        "/pkg/..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/link.txt",
        "/missing.js",
        "/%00",
    ] {
        let r = s.get(evil);
        assert!(r.status == 404 || r.status == 400, "{evil}: {}", r.status);
        assert!(
            !r.text().contains("secret\n") && r.text() != "secret",
            "{evil}"
        );
    }
    // Faults do not touch static files.
    s.admin("faults", json!({"failNext": 5}));
    assert_eq!(s.get("/").status, 200);
    assert_eq!(s.get("/api/x").status, 503);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn cors_for_the_configured_origin_only() {
    let s = Server::start(&["--cors-origin", "http://app.test"]);
    let pre = s
        .req("OPTIONS", "/api/todos/1")
        .header("Origin", "http://app.test")
        .header("Access-Control-Request-Method", "PUT")
        .header(
            "Access-Control-Request-Headers",
            "content-type, idempotency-key, x-trace, cookie",
        )
        .send();
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    let allowed = pre
        .header("access-control-allow-headers")
        .unwrap()
        .to_string();
    for h in [
        "content-type",
        "idempotency-key",
        "if-match",
        "ferry-changed-at",
        "authorization",
        "x-trace",
    ] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    assert!(!allowed.contains("cookie"));
    assert!(pre
        .header("access-control-allow-methods")
        .unwrap()
        .contains("PATCH"));

    let r = s
        .req("POST", "/api/todos")
        .header("Origin", "http://app.test")
        .json(json!({}))
        .send();
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert!(r
        .header("access-control-expose-headers")
        .unwrap()
        .contains("ETag"));
    assert!(r
        .header("access-control-expose-headers")
        .unwrap()
        .contains("Retry-After"));

    let other = s
        .req("GET", "/api/todos")
        .header("Origin", "http://evil.test")
        .send();
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
    let pre = s
        .req("OPTIONS", "/api/todos")
        .header("Origin", "http://evil.test")
        .header("Access-Control-Request-Method", "POST")
        .send();
    assert_eq!(pre.header("access-control-allow-origin"), None);

    let any = Server::start(&["--cors-origin", "*"]);
    let r = any
        .req("GET", "/api/todos")
        .header("Origin", "http://x.test:8000")
        .send();
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://x.test:8000")
    );
    // Faults do not fail preflights.
    any.admin("faults", json!({"failNext": 1}));
    let pre = any
        .req("OPTIONS", "/api/todos")
        .header("Origin", "http://x.test:8000")
        .header("Access-Control-Request-Method", "POST")
        .send();
    assert_eq!(pre.status, 204);
}

#[test]
fn data_survives_a_clean_stop() {
    let dir = temp_dir("db");
    let db = dir.join("ferry.sqlite");
    let db = db.to_str().unwrap();
    let s = Server::start(&["--db", db]);
    let rec = s
        .req("POST", "/api/t")
        .header("Idempotency-Key", "k")
        .json(json!({"n": 1}))
        .send()
        .json();
    let cursor = s.get("/api/t").json()["cursor"].clone();
    let t = Instant::now();
    let status = s.stop("TERM").expect("stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(3));

    let s = Server::start(&["--db", db]);
    let again = s.get("/api/t").json();
    assert_eq!(again["data"], json!([rec]));
    assert_eq!(again["cursor"], cursor);
    // The stored answer outlived the process too.
    let replay = s
        .req("POST", "/api/t")
        .header("Idempotency-Key", "k")
        .json(json!({"n": 1}))
        .send();
    assert_eq!(replay.json(), rec);
    assert_eq!(s.post("/api/t", json!({})).json()["id"], "2");
    let status = s.stop("INT").expect("stops on SIGINT");
    assert!(status.success());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_exit_with_usage() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-server"))
        .args(["--mode", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
