// Quotes on the booking site: photos for a quote request go straight from the phone to object
// storage (a presigned POST the server signs), and a quote's total follows the customer's picks.
// Pages work without this file except for photos. CSP: no inline scripts or style attributes.
(() => {
  "use strict";

  const TYPES = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", heic: "image/heic", heif: "image/heic" };

  function contentType(file) {
    if (file.type && file.type !== "application/octet-stream") return file.type === "image/heif" ? "image/heic" : file.type;
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    return TYPES[ext] || file.type || "";
  }

  async function errorText(response, fallback) {
    try {
      const body = await response.json();
      const fields = body.error && body.error.fields;
      return (fields && Object.values(fields)[0]) || (body.error && body.error.message) || fallback;
    } catch (_) {
      return fallback;
    }
  }

  function toStorage(ticket, file, type, progress) {
    return new Promise((resolve, reject) => {
      const body = new FormData();
      Object.entries(ticket.fields).forEach(([name, value]) => body.append(name, value));
      body.append("file", new File([file], file.name || "photo", { type }));
      const xhr = new XMLHttpRequest();
      xhr.open("POST", ticket.url);
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve();
        else if (xhr.status === 400) reject(new Error("That photo is too large."));
        else reject(new Error("Storage refused the photo (type, size or an expired link). Please try again."));
      });
      xhr.addEventListener("error", () => reject(new Error("No connection. Check your signal and try again.")));
      xhr.send(body);
    });
  }

  function setupPhotos(form) {
    const status = form.querySelector("[data-photo-status]");
    const message = status.querySelector("[data-photo-message]");
    const progress = status.querySelector("progress");
    const counter = form.querySelector("[data-photo-count]");
    const input = form.querySelector("input[type=file]");
    const token = form.querySelector("input[name=csrf_token]").value;
    const say = (text, kind) => {
      status.hidden = false;
      message.textContent = text;
      status.classList.toggle("is-error", kind === "error");
      status.classList.toggle("is-done", kind === "done");
    };
    form.querySelectorAll("[data-photo-pick]").forEach((el) => { el.hidden = false; });
    form.querySelectorAll("[data-photo-nojs]").forEach((el) => { el.hidden = true; });
    input.addEventListener("change", async () => {
      const file = input.files && input.files[0];
      if (!file) return;
      const max = Number(form.dataset.maxBytes);
      if (file.size > max) {
        say(`That photo is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${Math.round(max / 1048576)} MB.`, "error");
        input.value = "";
        return;
      }
      const type = contentType(file);
      const headers = { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": token };
      progress.value = 0;
      say("Uploading photo…");
      try {
        const asked = await fetch(form.action, {
          method: "POST", headers, credentials: "same-origin", body: JSON.stringify({ content_type: type, size: file.size }),
        });
        if (!asked.ok) throw new Error(await errorText(asked, "Couldn't start the upload."));
        const ticket = await asked.json();
        await toStorage(ticket, file, type, progress);
        const done = await fetch(ticket.done_url, { method: "POST", headers, credentials: "same-origin", body: "{}" });
        if (!done.ok) throw new Error(await errorText(done, "The photo didn't arrive. Please try again."));
        const stored = await done.json();
        counter.textContent = String(stored.count);
        const noun = form.querySelector("[data-photo-noun]");
        if (noun) noun.textContent = stored.count === 1 ? "photo" : "photos";
        progress.value = 100;
        say("Photo added. Add another, or tap Done.", "done");
      } catch (err) {
        say(err.message || "Upload failed.", "error");
      } finally {
        input.value = "";
      }
    });
  }

  // A time is tapped once: a second tap while Stripe's page loads does nothing (the server also
  // locks the quote, so a second request could never make a second booking).
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("form[data-once]")) return;
    if (form.dataset.sent) { event.preventDefault(); return; }
    form.dataset.sent = "1";
  });

  // Back from Stripe's page restores this page from the back/forward cache with the flag still
  // set: clear it, so the times can be tapped again (the server decides what happens then).
  window.addEventListener("pageshow", () => {
    document.querySelectorAll("form[data-once]").forEach((form) => { delete form.dataset.sent; });
  });

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form[data-request-photos]").forEach(setupPhotos);
    // The total follows the picks: reload the quote with them (the server does the sums).
    document.querySelectorAll("form[data-quote-form]").forEach((form) => {
      const update = form.querySelector("[data-update-button]");
      if (update) update.hidden = true;
      form.addEventListener("change", () => {
        const params = new URLSearchParams(new FormData(form));
        window.location.assign(`${form.dataset.updateUrl}?${params.toString()}#total`);
      });
    });
  });
})();
