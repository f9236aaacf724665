// Leasehold's few page behaviours. The Content-Security-Policy runs only script files served by the
// site, so there is no inline <script> and no on* attribute: the pages mark elements with data-*
// attributes and this file listens on the document, which also covers what htmx swaps in.
"use strict";

(function () {
  // A namespace request form: cpu, memory and storage matter only for the custom plan. Each field sits
  // in its own <div data-field> with its label, help and errors, so hiding that hides a stale error too.
  function syncCustomQuantities(form) {
    var plan = form.querySelector("[name=plan]");
    if (!plan) return;
    ["cpu", "memory", "storage"].forEach(function (name) {
      var wrapper = form.querySelector("[data-field=" + name + "]");
      if (wrapper) wrapper.hidden = plan.value !== "custom";
    });
  }

  function syncAll() {
    document.querySelectorAll("form[data-custom-quantities]").forEach(syncCustomQuantities);
  }

  document.addEventListener("DOMContentLoaded", syncAll);
  // htmx swaps the form's fields when the kind changes.
  document.addEventListener("htmx:afterSettle", syncAll);

  document.addEventListener("change", function (event) {
    var target = event.target;
    var form = target.closest && target.closest("form[data-custom-quantities]");
    if (form && target.name === "plan") syncCustomQuantities(form);
    // A "select all" checkbox: data-select-all names the checkboxes it sets.
    var group = target.getAttribute && target.getAttribute("data-select-all");
    if (group) {
      document.querySelectorAll("input[type=checkbox][name=" + CSS.escape(group) + "]").forEach(function (box) {
        box.checked = target.checked;
      });
    }
  });

  // A form with data-confirm asks before it is sent.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
