// The technician's day: photo uploads straight to object storage, the technician picker, one tap
// per action, and the service worker that lets the page be installed. The page works without this
// file except for photos. CSP: no inline scripts or style attributes.
(() => {
  "use strict";

  const TYPES = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", heic: "image/heic", heif: "image/heic" };

  // A form posts once: a second tap (or a shaky thumb) while the page loads does nothing.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("form[data-once]")) return;
    if (form.dataset.sent) { event.preventDefault(); return; }
    form.dataset.sent = "1";
    form.querySelectorAll("button").forEach((b) => b.classList.add("is-busy"));
  });

  function csrfToken(form) {
    return form.querySelector("input[name=csrf_token]").value;
  }

  function contentType(file) {
    if (file.type && file.type !== "application/octet-stream") return file.type === "image/heif" ? "image/heic" : file.type;
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    return TYPES[ext] || file.type || "";
  }

  function say(status, text, kind) {
    status.hidden = false;
    const message = status.querySelector("[data-photo-message]");
    message.textContent = text;
    status.classList.toggle("is-error", kind === "error");
    status.classList.toggle("is-done", kind === "done");
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

  // The presigned POST: every field storage signed for, the file last (S3 ignores what follows it).
  function sendToStorage(ticket, file, type, progress) {
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
      xhr.addEventListener("error", () => reject(new Error("No connection to storage. Check your signal and try again.")));
      xhr.send(body);
    });
  }

  async function upload(form, input) {
    const file = input.files && input.files[0];
    if (!file) return;
    const status = form.querySelector("[data-photo-status]");
    const progress = status.querySelector("progress");
    const kind = input.dataset.kind;
    const type = contentType(file);
    const max = Number(form.dataset.maxBytes);
    progress.value = 0;
    if (file.size > max) {
      say(status, `That photo is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${Math.round(max / 1048576)} MB.`, "error");
      input.value = "";
      return;
    }
    form.classList.add("is-uploading");
    say(status, `Uploading ${kind} photo…`);
    const headers = { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken(form) };
    try {
      const asked = await fetch(form.action, {
        method: "POST", headers, credentials: "same-origin",
        body: JSON.stringify({ kind, content_type: type, size: file.size }),
      });
      if (!asked.ok) throw new Error(await errorText(asked, "Couldn't start the upload."));
      const ticket = await asked.json();
      await sendToStorage(ticket, file, type, progress);
      const done = await fetch(ticket.done_url, { method: "POST", headers, credentials: "same-origin", body: "{}" });
      if (!done.ok) throw new Error(await errorText(done, "The photo didn't arrive. Please try again."));
      const photo = await done.json();
      const list = form.querySelector(`[data-thumbs="${photo.kind}"]`);
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = photo.src; link.target = "_blank"; link.rel = "noopener";
      const img = document.createElement("img");
      img.className = "md-thumb"; img.src = photo.src; img.alt = `${kind} photo`;
      img.dataset.testid = "photo-thumb";
      link.appendChild(img); item.appendChild(link); list.appendChild(item);
      progress.value = 100;
      say(status, `${kind[0].toUpperCase()}${kind.slice(1)} photo saved.`, "done");
    } catch (err) {
      say(status, err.message || "Upload failed.", "error");
    } finally {
      form.classList.remove("is-uploading");
      input.value = "";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form[data-photo-upload]").forEach((form) => {
      form.querySelectorAll("[data-photo-pick]").forEach((pick) => { pick.hidden = false; });
      form.querySelectorAll("[data-photo-nojs]").forEach((note) => { note.hidden = true; });
      form.addEventListener("change", (event) => {
        if (event.target.matches("input[type=file]")) upload(form, event.target);
      });
    });

    // Managers: pick a technician and the page follows.
    document.querySelectorAll("form[data-autosubmit]").forEach((form) => {
      const button = form.querySelector("[data-picker-submit]");
      if (button) button.classList.add("visually-hidden");
      form.querySelector("select").addEventListener("change", () => form.submit());
    });

    // Back from an action on a stop (#stop-…): its message goes next to it, where the thumb is, and
    // the stop stays open unless it's finished (the next one is open below it then).
    if (location.hash.startsWith("#stop-")) {
      const stop = document.getElementById(location.hash.slice(1));
      if (stop) {
        const flashes = document.querySelector(".flashes");
        if (flashes) stop.prepend(flashes);
        const details = stop.querySelector("details");
        if (details && !stop.classList.contains("md-stop-completed")) details.open = true;
        stop.scrollIntoView({ block: "start" });
      }
    }
  });

  // Installable, and the app shell (CSS, JS, icons) loads from the phone when the signal is weak.
  if ("serviceWorker" in navigator && window.isSecureContext) {
    window.addEventListener("load", () => {
      navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {});
    });
  }
})();
