// aigw console behaviour: dialogs, the Create AI Gateway stepper, copy buttons, limit forms, toasts.
// Everything is attached by data attributes and re-attached after htmx swaps.
(function () {
  "use strict";

  function stepFieldset(form, step) {
    return form.querySelector('fieldset[data-step="' + step + '"]');
  }

  function showStep(form, step) {
    const total = form.querySelectorAll("fieldset[data-step]").length;
    form.dataset.activeStep = String(step);
    form.querySelectorAll("fieldset[data-step]").forEach(function (fs) {
      fs.hidden = Number(fs.dataset.step) !== step;
    });
    form.querySelectorAll("[data-step-label]").forEach(function (li) {
      const n = Number(li.dataset.stepLabel);
      li.classList.toggle("current", n === step);
      li.classList.toggle("done", n < step);
      if (n === step) { li.setAttribute("aria-current", "step"); } else { li.removeAttribute("aria-current"); }
    });
    form.querySelector("[data-step-back]").hidden = step === 1;
    form.querySelector("[data-step-next]").hidden = step === total;
    form.querySelector("[data-step-submit]").hidden = step !== total;
    // Focus the field with an error if there is one, else the step's first field.
    const fieldset = stepFieldset(form, step);
    const target = fieldset.querySelector('[aria-invalid="true"]:not([disabled])') ||
      fieldset.querySelector("input:not([type=hidden]):not([disabled]), select");
    if (target) { target.focus(); }
  }

  // The inline error under a field: the server's, or one written here.
  function errorFor(field) {
    const id = field.id + "-error";
    let small = document.getElementById(id);
    if (!small) {
      small = document.createElement("small");
      small.id = id;
      small.className = "error";
      const anchor = field.type === "checkbox" ? field.closest("label") : field;
      anchor.insertAdjacentElement("afterend", small);
    }
    return small;
  }

  function markInvalid(field) {
    const small = errorFor(field);
    small.textContent = field.dataset.invalidMessage || field.validationMessage;
    small.hidden = false;
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", small.id);
  }

  function clearInvalid(field) {
    field.removeAttribute("aria-invalid");
    const small = document.getElementById(field.id + "-error");
    if (small) { small.hidden = true; small.textContent = ""; }
    field.removeAttribute("aria-describedby");
  }

  // Inline validation of the visible step before moving on.
  function stepIsValid(form, step) {
    const fieldset = stepFieldset(form, step);
    const quota = form.querySelector("#id_token_quota");
    const unlimited = form.querySelector("#id_unlimited_quota");
    if (quota && fieldset.contains(quota)) { quota.required = !unlimited.checked; }
    const custom = form.querySelector("#id_expires_in");
    const at = form.querySelector("#id_expires_at");
    if (at && fieldset.contains(at)) { at.required = custom.value === "custom"; }
    let firstInvalid = null;
    fieldset.querySelectorAll("input, select").forEach(function (field) {
      if (field.disabled || field.type === "hidden") { return; }
      if (field.checkValidity()) {
        if (field.getAttribute("aria-invalid") === "true") { clearInvalid(field); }
      } else {
        markInvalid(field);
        firstInvalid = firstInvalid || field;
      }
    });
    if (firstInvalid) { firstInvalid.focus(); }
    return firstInvalid === null;
  }

  function setUp(root) {
    root.querySelectorAll("form.stepper").forEach(function (form) {
      if (form.dataset.ready) { return; }
      form.dataset.ready = "1";
      showStep(form, Number(form.dataset.activeStep || 1));
      form.querySelector("[data-step-next]").addEventListener("click", function () {
        const step = Number(form.dataset.activeStep);
        if (stepIsValid(form, step)) { showStep(form, step + 1); }
      });
      form.querySelector("[data-step-back]").addEventListener("click", function () {
        showStep(form, Number(form.dataset.activeStep) - 1);
      });
      form.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && event.target.tagName === "INPUT" && !form.querySelector("[data-step-next]").hidden) {
          event.preventDefault();
          form.querySelector("[data-step-next]").click();
        }
      });
      // A field the user corrects loses its error as soon as it is valid.
      form.addEventListener("input", function (event) {
        const field = event.target;
        if (field.getAttribute("aria-invalid") === "true" && field.checkValidity()) { clearInvalid(field); }
      });
      const unlimited = form.querySelector("[data-toggles]");
      if (unlimited) {
        const target = form.querySelector("#" + unlimited.dataset.toggles);
        const sync = function () {
          target.disabled = unlimited.checked;
          if (unlimited.checked) { clearInvalid(target); } else { target.focus(); }
        };
        unlimited.addEventListener("change", sync);
        target.disabled = unlimited.checked;
      }
      const expires = form.querySelector("[data-shows-when-custom]");
      if (expires) {
        const box = form.querySelector("#" + expires.dataset.showsWhenCustom);
        expires.addEventListener("change", function () { box.hidden = expires.value !== "custom"; });
      }
    });
  }

  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.openDialog);
      dialog.showModal();
      // Keyboard focus goes to the form's first field (htmx-loaded forms: see htmx:afterSwap).
      const field = dialog.querySelector('[aria-invalid="true"]:not([disabled])') ||
        dialog.querySelector("form input:not([type=hidden]):not([disabled]):not([readonly]), form select:not([disabled]), form textarea:not([disabled])");
      if (field) { field.focus(); }
    }
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) { closer.closest("dialog").close(); }
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const field = document.getElementById(copy.dataset.copy);
      field.select();
      const done = function () { copy.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    }
  });

  // However a dialog is closed (button, Escape), forget a shown key and show the new gateway.
  // `close` does not bubble, hence the capture.
  document.addEventListener("close", function (event) {
    const dialog = event.target;
    if (!(dialog instanceof HTMLDialogElement)) { return; }
    const created = dialog.querySelector("[data-created-gateway]");
    // The next opening starts afresh rather than on the last step of an abandoned form.
    dialog.querySelectorAll("[data-reset-on-close]").forEach(function (el) {
      el.innerHTML = '<p aria-busy="true">Loading…</p>';
    });
    if (created) { window.location.reload(); }
  }, true);

  // A checkbox that switches a group of fields off (data-disables="id": Unlimited) or on
  // (data-enables="id": Enable budget). Disabled fields are not sent, so the server ignores them.
  document.addEventListener("change", function (event) {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || box.type !== "checkbox") { return; }
    const id = box.dataset.disables || box.dataset.enables;
    const target = id && document.getElementById(id);
    if (!target) { return; }
    target.disabled = box.dataset.disables ? box.checked : !box.checked;
    if (!target.disabled) {
      const first = target.matches("input, select") ? target : target.querySelector("input:not([type=hidden]), select");
      if (first) { first.focus(); }
    }
  });

  // In a limit form, a field the user corrects loses the server's error once it is valid.
  document.addEventListener("input", function (event) {
    const field = event.target;
    if (!field.closest || !field.closest("form.limit-form")) { return; }
    if (field.getAttribute("aria-invalid") === "true" && field.checkValidity()) { clearInvalid(field); }
  });

  // Toasts: Django's messages on a page, and `aigw:toast` events sent by the server (HX-Trigger).
  function dismissLater(toast) {
    window.setTimeout(function () { toast.remove(); }, 5000);
  }

  function showToast(message) {
    const box = document.getElementById("toasts");
    if (!box || !message) { return; }
    const toast = document.createElement("article");
    toast.className = "toast success";
    toast.textContent = message;
    box.appendChild(toast);
    dismissLater(toast);
  }

  document.addEventListener("aigw:toast", function (event) {
    showToast(event.detail && (event.detail.message || event.detail.value));
  });

  // The server closes a dialog after a successful save (HX-Trigger `aigw:close-dialog`).
  document.addEventListener("aigw:close-dialog", function (event) {
    const dialog = event.detail && document.getElementById(event.detail.id);
    if (dialog instanceof HTMLDialogElement && dialog.open) { dialog.close(); }
  });

  // A form that asks first (data-confirm="Remove grace?"); plain and htmx posts alike.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // Under our Content-Security-Policy no style attribute may be set, so htmx must not copy one
  // from an old element to its replacement while settling (tools such as Playwright's
  // screenshots leave style="" on inputs, and copying it is a CSP violation).
  if (typeof htmx !== "undefined") {
    htmx.config.attributesToSettle = htmx.config.attributesToSettle.filter(function (name) { return name !== "style"; });
  }

  // A form marked data-inline-errors gets its 400 answer swapped in like a 200: the server sends
  // the fragment back with the errors inline (htmx leaves 4xx answers out by default).
  document.addEventListener("htmx:beforeSwap", function (event) {
    const detail = event.detail;
    const elt = detail.requestConfig && detail.requestConfig.elt;
    if (detail.xhr.status === 400 && elt && elt.closest && elt.closest("[data-inline-errors]")) {
      detail.shouldSwap = true;
      detail.isError = false;
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    // A dialog whose form came back from the server with errors opens again by itself.
    document.querySelectorAll("dialog[data-open-on-load]").forEach(function (dialog) {
      dialog.showModal();
      const field = dialog.querySelector('[aria-invalid="true"]');
      if (field) { field.focus(); }
    });
    setUp(document);
    document.querySelectorAll("#toasts > .toast").forEach(dismissLater);
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    setUp(event.target);
    // A dialog whose form just arrived (or came back with errors): keyboard focus goes to the
    // field with an error, else the first field, not the Close button.
    const dialog = event.target.closest && event.target.closest("dialog[open]");
    if (dialog && !event.target.querySelector("form.stepper")) {
      const field = event.target.querySelector('[aria-invalid="true"]:not([disabled])') ||
        event.target.querySelector("input:not([type=hidden]):not([disabled]):not([readonly]), select:not([disabled]), textarea:not([disabled])");
      if (field) { field.focus(); }
    }
  });
})();
