// The owner's calendar: lanes per technician (EventCalendar, from npm), drag to move.
// Times are the business's wall-clock times; the server converts with its time zone.
(function () {
  const el = document.getElementById("calendar");
  if (!el || !window.EventCalendar) return;
  const message = document.querySelector(".cal-message");
  const pad = (n) => String(n).padStart(2, "0");
  const local = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:00`;
  const phone = window.matchMedia("(max-width: 700px)").matches;
  const show = (text) => { message.textContent = text; message.hidden = !text; };

  const options = {
    view: phone ? "resourceTimeGridDay" : "resourceTimeGridWeek",
    headerToolbar: { start: "prev,next today", center: "title", end: "resourceTimeGridDay,resourceTimeGridWeek" },
    buttonText: { today: "Today", resourceTimeGridDay: "Day", resourceTimeGridWeek: "Week" },
    resources: JSON.parse(el.dataset.resources),
    datesAboveResources: true,
    slotMinTime: "07:00:00",
    slotMaxTime: "20:00:00",
    scrollTime: "08:00:00",
    allDaySlot: false,
    nowIndicator: true,
    editable: true,
    eventDurationEditable: false,
    height: phone ? "70vh" : "auto",
    eventSources: [{ url: el.dataset.eventsUrl }],
    eventClick: (info) => { window.location.href = info.event.extendedProps.url; },
    dateClick: (info) => {
      const tech = info.resource ? `&technician_id=${encodeURIComponent(info.resource.id)}` : "";
      window.location.href = `${el.dataset.newUrl}?starts_local=${local(info.date).slice(0, 16)}${tech}`;
    },
    eventDrop: async (info) => {
      show("");
      const body = { id: info.event.id, start: local(info.event.start),
                     resourceId: info.newResource ? info.newResource.id : null };
      try {
        const r = await fetch(el.dataset.moveUrl, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": el.dataset.csrf },
          body: JSON.stringify(body),
        });
        if (!r.ok) {
          const data = await r.json().catch(() => ({}));
          info.revert();
          show((data.error && data.error.message) || "That move isn't possible.");
        }
      } catch (e) {
        info.revert();
        show("We couldn't reach the server. Nothing was changed.");
      }
    },
  };
  // ?date=YYYY-MM-DD opens the calendar on that day (links from bookings, tests).
  if (/^\d{4}-\d{2}-\d{2}$/.test(el.dataset.date || "")) options.date = el.dataset.date;
  EventCalendar.create(el, options);
})();
