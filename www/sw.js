// The app shell's service worker, so the page itself loads offline (Ferry keeps the data; this
// keeps the code). Network first, so a rebuilt pkg/ or an edited page is picked up at once when
// online; the cache only answers when the network does not. The page fills the cache with what
// it loaded (see app.js), so the wasm-pack snippet paths need not be listed here.
const CACHE = "ferry-demo-shell";
const NEVER = ["/api/", "/__admin/"]; // data and switches must never come from a cache

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (ev) => ev.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (ev) => {
  const url = new URL(ev.request.url);
  if (ev.request.method !== "GET" || url.origin !== location.origin) return;
  if (NEVER.some((p) => url.pathname.startsWith(p))) return;
  ev.respondWith(fresh(ev.request));
});

async function fresh(request) {
  const cache = await caches.open(CACHE);
  try {
    const res = await fetch(request);
    if (res.ok) await cache.put(request, res.clone());
    return res;
  } catch (e) {
    // `?device=B` is the same page: look the document up without its query. A server that
    // answers `Vary: Origin` would otherwise never match module scripts (sent with an Origin).
    const hit = await cache.match(request, { ignoreSearch: request.mode === "navigate", ignoreVary: true });
    if (hit) return hit;
    throw e;
  }
}
