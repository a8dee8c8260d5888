// The customer's pin (Leaflet, from npm): drag it onto the driveway; the hidden lat/lng follow.
(function () {
  const el = document.getElementById("pin-map");
  if (!el || !window.L) return;
  const lat = parseFloat(el.dataset.lat), lng = parseFloat(el.dataset.lng);
  const map = L.map(el, { zoomControl: true, attributionControl: !!el.dataset.tiles }).setView([lat, lng], 17);
  if (el.dataset.tiles) {
    L.tileLayer(el.dataset.tiles, { maxZoom: 19, attribution: el.dataset.attribution }).addTo(map);
  } else {
    el.classList.add("no-tiles");
  }
  const icon = L.divIcon({ className: "pin-icon", iconSize: [28, 28], iconAnchor: [14, 28] });
  const marker = L.marker([lat, lng], { draggable: true, icon, keyboard: true, title: "Vehicle location" }).addTo(map);
  const form = el.closest("form");
  marker.on("dragend", () => {
    const p = marker.getLatLng();
    form.querySelector("[name=lat]").value = p.lat.toFixed(6);
    form.querySelector("[name=lng]").value = p.lng.toFixed(6);
  });
})();
