// Fieldday's service worker, served at /sw.js by app/web/tech.py, which fills in the shell list
// (the hashed CSS, JS and icon URLs of this deploy) and the version.
//
// It caches the app shell only: static files, whose names carry their content hash and hold no
// customer data. It never caches a page: dashboard HTML is private and always comes from the
// network. When the phone has no signal, "My day" shows a short offline note built here.
"use strict";

const SHELL = ["__SHELL__"];
const CACHE = "fieldday-shell-__VERSION__";
const PREFIX = "fieldday-shell-";

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith(PREFIX) && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

function isStatic(url) {
  return url.origin === self.location.origin && url.pathname.startsWith("/static/");
}

function offlinePage() {
  const css = SHELL.find((u) => u.endsWith(".css")) || "";
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Offline · My day</title>
<link rel="stylesheet" href="${css}"></head><body class="auth"><main class="auth-wrap"><section class="card auth-card">
<h1>You're offline</h1><p class="muted">My day needs a connection to show your stops. Try again when you have signal.</p>
<p><a class="btn btn-primary" href="/my-day">Try again</a></p></section></main></body></html>`;
  return new Response(html, {
    status: 503,
    headers: {
      "Content-Type": "text/html; charset=utf-8",
      "Cache-Control": "no-store",
      "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'",
    },
  });
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (isStatic(url)) {
    // Hashed names never change content: the cache is always right when it has the file.
    event.respondWith(
      caches.open(CACHE).then((cache) =>
        cache.match(request).then((hit) => hit || fetch(request).then((response) => {
          if (response.ok) cache.put(request, response.clone());
          return response;
        })),
      ),
    );
    return;
  }
  if (request.mode === "navigate" && url.origin === self.location.origin && url.pathname === "/my-day") {
    event.respondWith(fetch(request).catch(() => offlinePage()));
  }
  // Everything else (pages, JSON, photos, uploads) goes to the network untouched.
});
