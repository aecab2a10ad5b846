// wasq dashboard: the little JavaScript it has.
// - Pages whose <main> has data-refresh reload their content in place.
// - Forms with data-confirm ask before they are sent.
// - The module upload form sends the file as the request body.
"use strict";

function refreshEvery(main) {
  const period = Number(main.dataset.refresh);
  if (!period) return;
  setInterval(async () => {
    if (document.hidden || main.contains(document.activeElement) && document.activeElement.matches("input, select, textarea")) return;
    try {
      const response = await fetch(location.href, { headers: { "x-wasq-refresh": "1" } });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("main");
      if (fresh) main.innerHTML = fresh.innerHTML;
    } catch (_) { /* the next tick tries again */ }
  }, period);
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.confirm && !confirm(form.dataset.confirm)) event.preventDefault();
});

function uploads(main) {
  const form = document.getElementById("upload");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = document.getElementById("upload-status");
    const name = form.elements.name.value.trim();
    const file = form.elements.file.files[0];
    if (!name || !file) { status.textContent = "Pick a file and a name."; return; }
    status.textContent = "Uploading " + file.name + "…";
    const response = await fetch("/modules/" + encodeURIComponent(name), {
      method: "PUT",
      headers: { "x-wasq-csrf": main.dataset.csrf, "content-type": "application/wasm" },
      body: file,
    });
    if (response.ok) { location.reload(); return; }
    status.textContent = await response.text();
  });
  form.elements.file.addEventListener("change", () => {
    const file = form.elements.file.files[0];
    if (file && !form.elements.name.value) form.elements.name.value = file.name.replace(/\.(wasm|wat)$/, "");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const main = document.getElementById("main");
  if (!main) return;
  refreshEvery(main);
  uploads(main);
});
