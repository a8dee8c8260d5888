// Message templates: a variable chip puts "{name}" where the cursor is in its textarea, then asks
// htmx for a fresh preview (the textarea listens for "template-insert"; typing uses keyup).
document.addEventListener("click", (event) => {
  const chip = event.target.closest("[data-insert]");
  if (!chip) return;
  const area = document.getElementById(chip.dataset.insertInto);
  if (!area) return;
  const text = chip.dataset.insert;
  const start = area.selectionStart ?? area.value.length;
  const end = area.selectionEnd ?? start;
  if (area.maxLength > 0 && area.value.length - (end - start) + text.length > area.maxLength) return;
  area.focus();
  area.setRangeText(text, start, end, "end");
  area.dispatchEvent(new Event("input", { bubbles: true }));
  area.dispatchEvent(new CustomEvent("template-insert", { bubbles: true }));
});
