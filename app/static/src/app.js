// Small progressive enhancements; every page works without them.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});

// Sign-up: suggest a booking-site address from the business name until the user edits it.
document.addEventListener("DOMContentLoaded", () => {
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
});
