// linklog's service worker: only what installing the web app needs. It
// caches nothing: every page and read comes from the server, so nothing stale
// is ever shown.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
