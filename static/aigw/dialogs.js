// aigw console: behaviour of the gateway dialogs and the API keys page (see aigw.js for dialogs, copy, toasts).
// Attached by data attributes on the document, so it works for content swapped in by htmx.
(function () {
  "use strict";

  // An expiry select shows its Custom date-time field only when Custom is picked
  // (data-custom-box="<id of the box>").
  document.addEventListener("change", function (event) {
    const select = event.target;
    if (!(select instanceof HTMLSelectElement) || !select.dataset.customBox) { return; }
    const box = document.getElementById(select.dataset.customBox);
    if (!box) { return; }
    box.hidden = select.value !== "custom";
    if (!box.hidden) {
      const field = box.querySelector("input");
      if (field) { field.focus(); }
    }
  });

  // After a change made in a dialog (HX-Trigger `aigw:refresh`), the page region behind it is
  // fetched again: the API keys table, or the gateway's tabs. Dialogs live outside that region.
  document.addEventListener("aigw:refresh", function () {
    if (typeof htmx === "undefined") { return; }
    const region = document.querySelector("[data-refresh-region]");
    if (region) {
      htmx.ajax("GET", window.location.href, { target: region, swap: "outerHTML" });
      return;
    }
    const tabs = document.getElementById("gateway-tabs");
    if (tabs) { htmx.ajax("GET", window.location.href, { target: tabs, swap: "innerHTML" }); }
  });

  // A dialog body without a field to type in (a confirmation, a secret shown once) still gets
  // the keyboard focus: the Copy button, else Cancel before a destructive action, else submit.
  document.addEventListener("htmx:afterSwap", function (event) {
    const target = event.target;
    const dialog = target.closest && target.closest("dialog[open]");
    if (!dialog || target.contains(document.activeElement)) { return; }
    const danger = target.querySelector("button[type=submit].danger");
    const focus = target.querySelector("[data-copy]") ||
      (danger ? target.querySelector("[data-close-dialog]:not([aria-label=Close])") : null) ||
      target.querySelector("button[type=submit]");
    if (focus) { focus.focus(); }
  });
})();
