/* Mahnwesen back office: small progressive enhancements (no inline scripts: CSP script-src 'self').
   Everything works without JavaScript; this only adds "select all", the selection counter and
   submitting the filter form when a select changes. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  ready(function () {
    // the "Unmatched payments" badge in the navigation
    var link = document.getElementById("unmatched-link");
    if (link && link.dataset.countUrl && window.fetch) {
      fetch(link.dataset.countUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          var badge = document.getElementById("unmatched-badge");
          if (data && badge) {
            badge.textContent = data.unmatched ? String(data.unmatched) : "";
            badge.hidden = !data.unmatched;
          }
        })
        .catch(function () {});
    }
  });

  ready(function () {
    var form = document.getElementById("changelist-form");
    if (form) {
      var all = document.getElementById("select-all");
      var boxes = Array.prototype.slice.call(form.querySelectorAll("input.action-select"));
      var counter = form.querySelector(".selected-count");
      var across = document.getElementById("select-across");

      var update = function () {
        var n = 0;
        boxes.forEach(function (box) {
          var row = box.closest("tr");
          if (row) { row.classList.toggle("selected", box.checked); }
          if (box.checked) { n += 1; }
        });
        if (all) {
          all.checked = boxes.length > 0 && n === boxes.length;
          all.indeterminate = n > 0 && n < boxes.length;
        }
        if (counter && counter.dataset.template) {
          counter.textContent = counter.dataset.template
            .replace("__n__", String(n)).replace("__total__", counter.dataset.total);
        }
      };
      if (all) {
        all.addEventListener("change", function () {
          boxes.forEach(function (box) { box.checked = all.checked; });
          if (!all.checked && across && across.type === "checkbox") { across.checked = false; }
          update();
        });
      }
      boxes.forEach(function (box) { box.addEventListener("change", update); });
      if (across && across.type === "checkbox") {
        across.addEventListener("change", function () {
          if (across.checked) { boxes.forEach(function (box) { box.checked = true; }); }
          update();
        });
      }
      update();

      // "Apply" without an action: stay, keep the ticked orders, say what is missing
      var actionSelect = document.getElementById("action-select");
      var missing = document.getElementById("action-missing");
      var apply = document.getElementById("apply-action");
      if (actionSelect && missing && apply) {
        form.addEventListener("submit", function (event) {
          if (event.submitter === apply && !actionSelect.value) {
            event.preventDefault();
            missing.hidden = false;
            actionSelect.focus();
          }
        });
        actionSelect.addEventListener("change", function () { if (actionSelect.value) { missing.hidden = true; } });
      }
    }

    var filters = document.getElementById("filter-form");
    if (filters) {
      Array.prototype.forEach.call(filters.querySelectorAll("select"), function (select) {
        select.addEventListener("change", function () { filters.submit(); });
      });
    }
  });
})();
