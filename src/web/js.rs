//! Small JavaScript helpers, where plain JS is both simpler and faster than crossing the boundary
//! once per field: validating JSON serialisation, timers, and connectivity events.

use js_sys::Function;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
// `a.b[2].c`: where in the record a value sits.
function describe(path) { return path.length ? '`' + path.join('.').replace(/\.\[/g, '[') + '`' : 'the value'; }
// Whether `v` (at nesting level `d`) is plain JSON that `ferry_stringify`'s checks would pass:
// a loop with no bookkeeping, so that the common case is one plain `JSON.stringify` (V8's fast
// path; a replacer function costs three to four times as much). Anything it doubts goes the
// checked way, which alone decides and names the fault.
function plain(v, d) {
  switch (typeof v) {
    case 'string': return !v.isWellFormed || v.isWellFormed();
    case 'number': return Number.isFinite(v);
    case 'boolean': return true;
    case 'object': {
      if (v === null) return true;
      if (d > 100) return false;
      if (Array.isArray(v)) {
        if (Object.getPrototypeOf(v) !== Array.prototype || Object.prototype.hasOwnProperty.call(v, 'toJSON')) return false;
        for (let i = 0; i < v.length; i++) if (v[i] === undefined || !plain(v[i], d + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return false;
      if (typeof v.toJSON === 'function') return false;
      const keys = Object.keys(v);
      for (let i = 0; i < keys.length; i++) {
        if (keys[i].isWellFormed && !keys[i].isWellFormed()) return false;
        const x = v[keys[i]];
        if (x !== undefined && !plain(x, d + 1)) return false;
      }
      return true;
    }
    default: return false;
  }
}
export function ferry_stringify(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    throw new TypeError('must be a plain object, got ' + kind);
  }
  if (plain(value, 1)) return JSON.stringify(value);
  // Levels of nesting: the engine reads JSON back with a recursion limit (128), and stores a
  // record inside rows, outbox entries and batches, so deeper records could be written but
  // never sent. Refused here, before anything is written.
  const depth = new Map();
  const paths = new Map([[value, []]]);
  return JSON.stringify(value, function (key, v) {
    const raw = this === undefined || key === '' ? value : this[key];
    const path = key === '' ? [] : [...(paths.get(this) || []), Array.isArray(this) ? '[' + key + ']' : key];
    if (key.isWellFormed && !key.isWellFormed()) {
      throw new TypeError(describe(path.slice(0, -1)) + ' has a field name holding half of a UTF-16 surrogate pair, which cannot be stored');
    }
    if (raw !== null && typeof raw === 'object') {
      const d = (depth.get(this) || 0) + 1;
      if (d > 100) throw new TypeError(describe(path) + ' nests deeper than 100 levels');
      depth.set(raw, d);
      paths.set(raw, path);
    }
    switch (typeof raw) {
      case 'string':
        if (raw.isWellFormed && !raw.isWellFormed()) {
          throw new TypeError(describe(path) + ' holds half of a UTF-16 surrogate pair (a cut emoji?), which cannot be stored');
        }
        break;
      case 'function': case 'symbol': case 'bigint':
        throw new TypeError(describe(path) + ' is a ' + typeof raw + ', which JSON cannot hold');
      case 'number':
        if (!Number.isFinite(raw)) throw new TypeError(describe(path) + ' is ' + raw + ', which JSON cannot hold');
        break;
      case 'undefined':
        if (Array.isArray(this)) throw new TypeError(describe(path) + ' is undefined, which an array in JSON cannot hold');
        return undefined;
      case 'object':
        if (raw !== null && !Array.isArray(raw)) {
          const proto = Object.getPrototypeOf(raw);
          if (proto !== Object.prototype && proto !== null) {
            const ctor = raw.constructor && raw.constructor.name;
            const name = ctor && ctor !== 'Object' ? 'a ' + ctor : 'an object with a prototype of its own';
            throw new TypeError(describe(path) + ' is ' + name + ', not a plain object (store it as a string or number)');
          }
        }
        // JSON.stringify would store what it returns (or nothing at all), not the value. For an
        // array, its own or its class's only: a library's Array.prototype.toJSON would refuse
        // every array.
        const arrayToJSON = (a) => Object.prototype.hasOwnProperty.call(a, 'toJSON') ||
          (Object.getPrototypeOf(a) !== Array.prototype && typeof a.toJSON === 'function');
        if (raw !== null && (Array.isArray(raw) ? arrayToJSON(raw) : typeof raw.toJSON === 'function')) {
          throw new TypeError(describe(path) + ' has a toJSON method: store what it returns instead');
        }
        break;
    }
    return v;
  });
}
// IndexedDB 3's getAllRecords() answers keys and values in one request (Chromium 141 on);
// elsewhere it is null and the caller asks getAllKeys() and getAll() instead.
export function ferry_get_all_records_with(source, options) {
  return typeof source.getAllRecords === 'function' ? source.getAllRecords(options) : null;
}
// A transaction's queued writes: `text` is the JSON of [[store, key, value] (a put),
// [store, key, value, 1] (an add: a taken key's error is left to abort the transaction),
// [store, key] (a delete) or [store, lo, hi, 0] (a delete of lo..=hi), ...], issued in order.
export function ferry_write_all(tx, text) {
  const ops = JSON.parse(text), stores = new Map();
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    let s = stores.get(op[0]);
    if (s === undefined) { s = tx.objectStore(op[0]); stores.set(op[0], s); }
    if (op.length === 3) s.put(op[2], op[1]);
    else if (op.length === 4) op[3] === 1 ? s.add(op[2], op[1]) : s.delete(IDBKeyRange.bound(op[1], op[2]));
    else s.delete(op[1]);
  }
}
// Adds that fail softly: an add whose key is taken fails alone (the default action of its error
// event, aborting the transaction, is prevented), so a write checks a key is free without
// reading it first. `text` is the JSON of [[store, key, value], ...]; `wake` is told when each
// request is done. Any other failure (quota) still aborts the transaction.
export function ferry_add_all(tx, text, wake) {
  const ops = JSON.parse(text), reqs = new Array(ops.length);
  for (let i = 0; i < ops.length; i++) {
    const r = tx.objectStore(ops[i][0]).add(ops[i][2], ops[i][1]);
    r.onsuccess = wake;
    r.onerror = (e) => {
      if (r.error && r.error.name === 'ConstraintError') { e.preventDefault(); e.stopPropagation(); }
      wake();
    };
    reqs[i] = r;
  }
  return reqs;
}
export function ferry_record_pairs(records) {
  const keys = new Array(records.length), values = new Array(records.length);
  for (let i = 0; i < records.length; i++) { keys[i] = records[i].primaryKey; values[i] = records[i].value; }
  return JSON.stringify([keys, values]);
}
// Why `indexedDB.open(name)` throws (it did once already): the browser's own words. Should it
// open now, it is the store's own database, closed again.
export function ferry_open_refused(name) {
  try {
    const r = indexedDB.open(name);
    r.onsuccess = () => r.result.close();
    return 'it opens now';
  } catch (e) {
    return (e && e.name ? e.name + ': ' : '') + (e && e.message ? e.message : String(e));
  }
}
export function ferry_set_timeout(f, ms) { return setTimeout(f, ms); }
// localStorage may be missing (a worker), disabled or full: a note is best effort.
export function ferry_note_get(key) {
  try { return globalThis.localStorage ? localStorage.getItem(key) : null; } catch (_) { return null; }
}
export function ferry_note_set(key, value) {
  try {
    if (!globalThis.localStorage) return;
    if (value === undefined || value === null) localStorage.removeItem(key); else localStorage.setItem(key, value);
  } catch (_) {}
}
export function ferry_clear_timeout(id) { clearTimeout(id); }
export function ferry_on_line() {
  return typeof navigator === 'undefined' || navigator.onLine !== false;
}
// One store open in several tabs: a Web Lock makes one of them the leader (the one that
// flushes) until it closes or gives the lead up, when the next waiting tab gets it; a
// BroadcastChannel carries changes and sync outcomes between them. Without Web Locks every tab
// leads. Every message carries `from`, the collections its tab declares.
export class FerryTabs {
  constructor(name, onMessage, onLeader, from) {
    this.closed = false;
    this.name = name;
    this.from = from;
    this.onLeader = onLeader;
    this.release = () => {};
    this.channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(name) : null;
    if (this.channel) this.channel.onmessage = (e) => {
      if (this.closed) return;
      const m = e.data;
      if (m && Array.isArray(m.texts)) {
        // Changes and reports travel as JSON text (see postText); a batch is several texts.
        let body;
        try { body = m.texts.length === 1 ? JSON.parse(m.texts[0]) : m.texts.flatMap((t) => JSON.parse(t)); } catch { return; }
        onMessage({ t: m.t, body, from: m.from });
      } else onMessage(m);
    };
    const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
    this.shared = !!(locks && typeof locks.request === 'function');
    if (this.shared) {
      this.queue();
    } else {
      queueMicrotask(() => { if (!this.closed) onLeader(); });
    }
  }
  // Changes go out at once when none went in the last 16 ms, else together at the end of that
  // window: a loop of writes posts ~60 messages a second, not one per write (a post costs
  // ~0.1 ms of the writing tab's time, a tenth of a write). Any other message first sends the
  // changes held back, so the other tabs hear everything in order. Changes and reports go as
  // the JSON text the writing tab made anyway: a string is cloned far faster than an object
  // tree, and only tabs that hear them parse them.
  // Waits in the lock's queue; `onLeader` when this tab gets it.
  queue() {
    const held = new Promise((resolve) => { this.release = resolve; });
    navigator.locks.request(this.name, () => { if (!this.closed) this.onLeader(); return held; }).catch(() => {});
  }
  // Gives the lead to the next tab in the queue, and waits behind it for it again.
  requeue() {
    if (this.closed || !this.shared) return;
    this.release();
    this.queue();
  }
  postText(t, text) {
    if (!this.channel || this.closed) return;
    if (t === 'changes') {
      if (this.timer !== undefined) {
        if (!this.held) this.held = [];
        this.held.push(text);
        return;
      }
      this.channel.postMessage({ t, texts: [text], from: this.from });
      this.quiet();
      return;
    }
    this.flush();
    this.channel.postMessage({ t, texts: [text], from: this.from });
  }
  post(t, body) {
    if (!this.channel || this.closed) return;
    this.flush();
    this.channel.postMessage({ t, body, from: this.from });
  }
  quiet() {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.held) { this.flush(); this.quiet(); }
    }, 16);
  }
  flush() {
    const held = this.held;
    this.held = null;
    if (held && this.channel && !this.closed) this.channel.postMessage({ t: 'changes', texts: held, from: this.from });
  }
  close() {
    this.flush();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.closed = true; this.release(); if (this.channel) this.channel.close();
  }
  // For a tab that left: one message on a channel of its own (the other tabs get it all the same).
  static postOnce(name, t, text, from) {
    if (typeof BroadcastChannel !== 'function') return;
    const channel = new BroadcastChannel(name);
    channel.postMessage({ t, texts: [text], from });
    channel.close();
  }
}
export function ferry_listen(type, f) {
  if (typeof globalThis.addEventListener !== 'function') return () => {};
  globalThis.addEventListener(type, f);
  return () => globalThis.removeEventListener(type, f);
}
"#)]
extern "C" {
    /// `JSON.stringify` that refuses what JSON cannot hold instead of dropping or mangling it.
    #[wasm_bindgen(catch)]
    pub fn ferry_stringify(value: &JsValue) -> Result<String, JsValue>;
    /// `source.getAllRecords(options)` (an object store or an index: `{ query, count }`), or
    /// `None` where the browser lacks it.
    #[wasm_bindgen(catch)]
    pub fn ferry_get_all_records_with(
        source: &JsValue,
        options: &JsValue,
    ) -> Result<Option<web_sys::IdbRequest>, JsValue>;
    /// Issues a transaction's queued puts and deletes (see `IdbTxn::flush`).
    #[wasm_bindgen(catch)]
    pub fn ferry_write_all(tx: &web_sys::IdbTransaction, text: &str) -> Result<(), JsValue>;
    /// Issues adds that fail alone where their key is taken; answers their requests.
    #[wasm_bindgen(catch)]
    pub fn ferry_add_all(
        tx: &web_sys::IdbTransaction,
        text: &str,
        wake: &Function,
    ) -> Result<js_sys::Array, JsValue>;
    /// `getAllRecords`' answer as the JSON text of `[keys, values]` (primary keys).
    #[wasm_bindgen(catch)]
    pub fn ferry_record_pairs(records: &JsValue) -> Result<String, JsValue>;
    /// `localStorage.getItem(key)`, or nothing where there is none.
    pub fn ferry_note_get(key: &str) -> Option<String>;
    /// `localStorage.setItem(key, value)`, or `removeItem` for `None`; silent where it fails.
    pub fn ferry_note_set(key: &str, value: Option<String>);
    /// The exception `indexedDB.open()` throws here, as text.
    pub fn ferry_open_refused(name: &str) -> String;
    /// `setTimeout(f, ms)`.
    pub fn ferry_set_timeout(f: &Function, ms: f64) -> JsValue;
    /// `clearTimeout(id)`.
    pub fn ferry_clear_timeout(id: &JsValue);
    /// `navigator.onLine` (true where there is no navigator).
    pub fn ferry_on_line() -> bool;
    /// Adds a global event listener; returns the function that removes it.
    pub fn ferry_listen(kind: &str, f: &Function) -> Function;

    /// Leadership (Web Locks) and messages (BroadcastChannel) among the tabs of one store.
    pub type FerryTabs;
    /// Joins the tabs of store `name`: `on_message(data)` for messages from the others,
    /// `on_leader()` once this tab leads; `from`, the collections this tab declares (an array
    /// of names), goes with every message.
    #[wasm_bindgen(constructor)]
    pub fn new(
        name: &str,
        on_message: &Function,
        on_leader: &Function,
        from: &JsValue,
    ) -> FerryTabs;
    /// Gives the lead to the next tab in the lock's queue and waits behind it.
    #[wasm_bindgen(method)]
    pub fn requeue(this: &FerryTabs);
    /// Sends message `{ t, body }` to the other tabs.
    #[wasm_bindgen(method)]
    pub fn post(this: &FerryTabs, t: &str, body: &JsValue);
    /// Sends changes or a report, as JSON text, to the other tabs (they hear `{ t, body }`).
    #[wasm_bindgen(method, js_name = postText)]
    pub fn post_text(this: &FerryTabs, t: &str, text: &str);
    /// [`FerryTabs::post_text`] from a tab that has left the others (closed).
    #[wasm_bindgen(static_method_of = FerryTabs, js_name = postOnce)]
    pub fn post_once(name: &str, t: &str, text: &str, from: &JsValue);
    /// Leaves: gives up leadership and stops listening.
    #[wasm_bindgen(method)]
    pub fn close(this: &FerryTabs);
    /// Whether Web Locks coordinate the tabs (else every tab leads).
    #[wasm_bindgen(method, getter)]
    pub fn shared(this: &FerryTabs) -> bool;
}

/// A `setTimeout` that owns its callback. Dropping it clears the timer and frees the callback,
/// also from inside the callback (wasm-bindgen frees a closure only after its call returns). A
/// callback handed over with `Closure::once_into_js` is freed only when it runs, so each timer
/// cleared first (every request's timeout, every debounced write) leaked it and what it held.
pub struct Timer {
    id: JsValue,
    _f: Closure<dyn FnMut()>,
}

impl Timer {
    /// Calls `f` once after `ms` milliseconds, unless dropped first.
    pub fn new(ms: f64, f: impl FnOnce() + 'static) -> Timer {
        let f = Closure::once(f);
        let id = ferry_set_timeout(f.as_ref().unchecked_ref(), ms.max(0.0));
        Timer { id, _f: f }
    }
}

/// Waits `ms` milliseconds (on a timer, without blocking the page).
pub async fn sleep(ms: f64) {
    let mut timer = None;
    let woken = js_sys::Promise::new(&mut |resolve, _| {
        timer = Some(Timer::new(ms, move || {
            let _ = resolve.call0(&JsValue::NULL);
        }));
    });
    let _ = wasm_bindgen_futures::JsFuture::from(woken).await;
    drop(timer);
}

impl Drop for Timer {
    fn drop(&mut self) {
        ferry_clear_timeout(&self.id);
    }
}
