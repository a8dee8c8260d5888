// Small progressive enhancements; every page works without them.
// CSP: no inline scripts or style attributes. Setting styles through the CSSOM (el.style) is allowed.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});

// Mobile menu: close it with Escape or by tapping outside.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  document.querySelectorAll("details.menu[open]").forEach((menu) => {
    menu.removeAttribute("open");
    menu.querySelector("summary")?.focus();
  });
});
document.addEventListener("click", (event) => {
  document.querySelectorAll("details.menu[open]").forEach((menu) => {
    if (!menu.contains(event.target)) menu.removeAttribute("open");
  });
});

document.addEventListener("DOMContentLoaded", () => {
  // Sign-up: suggest a booking-site address from the business name until the user edits it.
  document.querySelectorAll("[data-slug-source]").forEach((source) => {
    const target = document.getElementById(source.dataset.slugSource);
    if (!target) return;
    let touched = target.value !== "";
    target.addEventListener("input", () => { touched = true; });
    source.addEventListener("input", () => {
      if (touched) return;
      target.value = source.value.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
        .replace(/&/g, "and").replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40).replace(/-+$/g, "");
    });
  });

  // Password fields: a Show/Hide button, so people on phones can check what they typed.
  document.querySelectorAll(".field input[type=password]").forEach((input) => {
    const wrap = document.createElement("div");
    wrap.className = "password-wrap";
    input.parentNode.insertBefore(wrap, input);
    wrap.appendChild(input);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "reveal";
    button.textContent = "Show";
    button.setAttribute("aria-label", "Show password");
    button.setAttribute("aria-controls", input.id);
    button.addEventListener("click", () => {
      const showing = input.type === "text";
      input.type = showing ? "password" : "text";
      button.textContent = showing ? "Show" : "Hide";
      button.setAttribute("aria-label", showing ? "Show password" : "Hide password");
    });
    wrap.appendChild(button);
  });

  // Settings: preview the booking site's header as the owner edits colour, name and tagline.
  const card = document.querySelector("[data-brand-preview-card]");
  const preview = document.querySelector("[data-brand-preview]");
  const colour = document.querySelector("[data-brand-input]");
  if (card && preview && colour) {
    const label = document.querySelector("[data-brand-value]");
    const paint = () => {
      preview.style.setProperty("--brand", colour.value);
      if (label) label.textContent = colour.value;
    };
    colour.addEventListener("input", paint);
    paint();
    preview.querySelectorAll("[data-preview-of]").forEach((el) => {
      const input = document.getElementById(el.dataset.previewOf);
      if (input) input.addEventListener("input", () => { el.textContent = input.value; });
    });
    card.hidden = false;
  }
});

// Work in progress on the server (e.g. charging a card): reload until it is done, a few times at most.
document.addEventListener("DOMContentLoaded", () => {
  const el = document.querySelector("[data-refresh-after]");
  if (!el) return;
  const tries = Number(sessionStorage.getItem("fd-refresh-tries") || 0);
  if (tries >= 10) return;
  setTimeout(() => {
    sessionStorage.setItem("fd-refresh-tries", String(tries + 1));
    window.location.reload();
  }, Number(el.dataset.refreshAfter) * 1000);
});
window.addEventListener("pageshow", () => {
  if (!document.querySelector("[data-refresh-after]")) sessionStorage.removeItem("fd-refresh-tries");
});
