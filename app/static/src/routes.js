// The route page: each technician's day on a Leaflet map (numbered stops, a line per route, the
// home base), and drag-to-reorder of a technician's stops (SortableJS) with ETAs recomputed by
// the server. Without JavaScript the lists and the up/down buttons do the same.
(function () {
  document.querySelectorAll(".swatch[data-color]").forEach((el) => { el.style.background = el.dataset.color; });

  const el = document.getElementById("route-map");
  if (el && window.L) {
    const data = JSON.parse(el.dataset.routes || "{}");
    const map = L.map(el, { zoomControl: true, attributionControl: !!el.dataset.tiles });
    if (el.dataset.tiles) {
      L.tileLayer(el.dataset.tiles, { maxZoom: 19, attribution: el.dataset.attribution }).addTo(map);
    } else {
      el.classList.add("no-tiles"); // offline: the stops and lines still show on a plain background
    }
    const bounds = [];
    (data.routes || []).forEach((route) => {
      if (!route.stops.length) return;
      const line = [route.home];
      const home = L.circleMarker(route.home, { radius: 6, color: route.color, fillOpacity: 1 }).addTo(map);
      home.bindTooltip(`${route.name}: home base`);
      route.stops.forEach((stop, i) => {
        const at = [stop.lat, stop.lng];
        line.push(at);
        bounds.push(at);
        const icon = L.divIcon({ className: "stop-icon", html: String(i + 1), iconSize: [26, 26], iconAnchor: [13, 13] });
        const marker = L.marker(at, { icon, keyboard: true, title: `${i + 1}. ${stop.customer}` }).addTo(map);
        marker.getElement()?.style.setProperty("--stop-color", route.color);
        marker.bindTooltip(`${i + 1}. ${stop.customer}`);
      });
      line.push(route.home);
      bounds.push(route.home);
      L.polyline(line, { color: route.color, weight: 4, opacity: 0.85 }).addTo(map);
    });
    if (bounds.length) map.fitBounds(bounds, { padding: [24, 24] });
    else map.setView([30.27, -97.74], 11);
  }

  if (!window.Sortable) return;
  const csrf = document.querySelector("input[name=csrf_token]")?.value;
  document.querySelectorAll("ol.stops[data-sortable]").forEach((list) => {
    Sortable.create(list, {
      animation: 150,
      onEnd: async () => {
        list.classList.add("is-saving");
        const order = [...list.querySelectorAll("li[data-booking]")].map((li) => li.dataset.booking);
        const response = await fetch("/routes/reorder", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
          body: JSON.stringify({ day: list.dataset.day, technician_id: list.dataset.technician, order }),
        });
        if (!response.ok) list.classList.add("has-error");
        window.location.reload(); // ETAs, drive minutes and the map follow the new order
      },
    });
  });
})();
