// Copies our own CSS/JS and the npm libraries into app/static/dist with content-hashed
// names, and writes manifest.json mapping logical names to files (read by asset_url()).
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "app", "static", "dist");
const sources = {
  "app.css": "app/static/src/app.css",
  "app.js": "app/static/src/app.js",
  "booking.css": "app/static/src/booking.css",
  "customers.css": "app/static/src/customers.css",
  "htmx.min.js": "node_modules/htmx.org/dist/htmx.min.js",
  "leaflet.js": "node_modules/leaflet/dist/leaflet.js",
  "leaflet.css": "node_modules/leaflet/dist/leaflet.css",
  "pin-map.js": "app/static/src/pin-map.js",
  "calendar.js": "app/static/src/calendar.js",
  "dashboard.css": "app/static/src/dashboard.css",
  "routes.js": "app/static/src/routes.js",
  "chart.umd.js": "node_modules/chart.js/dist/chart.umd.js",
  "reports.js": "app/static/src/reports.js",
  "sortable.min.js": "node_modules/sortablejs/Sortable.min.js",
  "event-calendar.min.js": "node_modules/@event-calendar/build/dist/event-calendar.min.js",
  "event-calendar.min.css": "node_modules/@event-calendar/build/dist/event-calendar.min.css",
  "tech.js": "app/static/src/tech.js",
  "quotes.js": "app/static/src/quotes.js",
  "templates.js": "app/static/src/templates.js",
  "tech.css": "app/static/src/tech.css",
  "icon.svg": "app/static/src/icon.svg",
  "icon-192.png": "app/static/src/icon-192.png",
  "icon-512.png": "app/static/src/icon-512.png",
  "icon-maskable-512.png": "app/static/src/icon-maskable-512.png",
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const manifest = {};
for (const [name, rel] of Object.entries(sources)) {
  const body = readFileSync(join(root, rel));
  const hash = createHash("sha256").update(body).digest("hex").slice(0, 10);
  const ext = extname(name);
  const file = `${name.slice(0, -ext.length)}.${hash}${ext}`;
  writeFileSync(join(out, file), body);
  manifest[name] = file;
}
writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`built ${Object.keys(manifest).length} assets into app/static/dist`);
