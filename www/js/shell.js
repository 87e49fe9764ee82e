// Lets the page load without a network: registers the service worker (www/sw.js) and puts every
// file this page loaded into its cache. Ferry keeps the data offline; this keeps the code.
const CACHE = "ferry-demo-shell";

export async function keepShellOffline() {
  if (!("serviceWorker" in navigator) || !("caches" in window)) return false;
  await navigator.serviceWorker.register("sw.js");
  await navigator.serviceWorker.ready;
  const urls = new Set([location.pathname]);
  for (const entry of performance.getEntriesByType("resource")) {
    const url = new URL(entry.name);
    if (url.origin === location.origin && !url.pathname.startsWith("/api/") && !url.pathname.startsWith("/__admin/")) {
      urls.add(url.pathname);
    }
  }
  await (await caches.open(CACHE)).addAll([...urls]);
  return true;
}
