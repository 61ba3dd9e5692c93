// statusflow board: the board page's drag and drop and Move to controls, and the
// editor's condition rows.
(function () {
  "use strict";

  // What only matters without JavaScript (e.g. "Show this type's settings") hides.
  document.documentElement.classList.add("js");

  function refreshBoard() {
    if (window.htmx && document.getElementById("board-columns")) {
      window.htmx.ajax("GET", "/ui/board/columns", { target: "#board-columns", swap: "outerHTML" });
    }
  }

  // Drag and drop: a trigger card dropped on another column takes that column's status,
  // through the same route as its "Move to" control; then the board is read again.
  function moveTrigger(triggerId, status) {
    var body = new URLSearchParams();
    body.set("status", status);
    return fetch("/ui/triggers/" + encodeURIComponent(triggerId) + "/move", {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-CSRF-Token": window.statusflow ? window.statusflow.csrfToken() : "",
        "HX-Request": "true"
      },
      body: body.toString()
    }).then(refreshBoard, refreshBoard);
  }

  function wireSortable(root) {
    if (!window.Sortable) {
      return;
    }
    var board = root.querySelector ? (root.id === "board-columns" ? root : root.querySelector("#board-columns")) : null;
    if (!board || !board.dataset.editable) {
      return;
    }
    board.querySelectorAll("ul.cards").forEach(function (list) {
      if (list.dataset.sortable) {
        return;
      }
      list.dataset.sortable = "1";
      window.Sortable.create(list, {
        group: "triggers",
        draggable: ".card",
        filter: "input, select, button, a, label",
        preventOnFilter: false,
        emptyInsertThreshold: 24,
        animation: 0,
        onEnd: function (event) {
          var from = event.from.dataset.status;
          var to = event.to.dataset.status;
          if (from === to) {
            return;
          }
          // The card goes back where it was until the server has saved the move: the
          // board then shows it in its new column, read again (never ahead of the API).
          event.from.insertBefore(event.item, event.from.children[event.oldIndex] || null);
          event.item.classList.add("moving");
          moveTrigger(event.item.dataset.trigger, to);
        }
      });
    });
  }

  // Keyboard users keep their place: after a card's form refreshed the board, focus
  // goes back to that card's control (its "Move to" in its new column, or the same
  // button), found again by id.
  var refocus = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    var card = form && form.closest ? form.closest("[data-trigger], [data-action]") : null;
    if (!card) {
      refocus = null;
      return;
    }
    var control = form.classList.contains("move") ? "select" : "button";
    var key = card.dataset.trigger ? "data-trigger" : "data-action";
    var value = card.dataset.trigger || card.dataset.action;
    refocus = "[" + key + '="' + value + '"] ' + (control === "select" ? ".move select" : 'form[hx-post] button');
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (refocus) {
      var target = document.querySelector(refocus);
      refocus = null;
      if (target) {
        target.focus();
      }
    }
  });

  // The editor's conditions: "Add condition" adds a blank row (the page's <template>),
  // a row's "Remove" takes it away, in place; each control's label keeps its row number.
  function renumberConditions(list) {
    list.querySelectorAll("[data-condition]").forEach(function (row, i) {
      row.querySelectorAll("[data-label]").forEach(function (control) {
        control.setAttribute("aria-label", control.dataset.label + " " + (i + 1));
      });
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target : event.target.parentElement;
    var add = target && target.closest("[data-add-condition]");
    var remove = target && target.closest("[data-remove-condition]");
    var list = document.getElementById("condition-rows");
    var template = document.getElementById("condition-template");
    if (!list || !template || !(add || remove)) {
      return;
    }
    event.preventDefault();
    if (add) {
      var next = Number(list.dataset.next) || 0;
      list.dataset.next = String(next + 1);
      list.insertAdjacentHTML("beforeend", template.innerHTML.replace(/__INDEX__/g, String(next)));
      renumberConditions(list);
      list.lastElementChild.querySelector("select").focus();
    } else {
      remove.closest("[data-condition]").remove();
      renumberConditions(list);
      document.querySelector("[data-add-condition]").focus();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    wireSortable(document);
  });
  document.addEventListener("htmx:load", function (event) {
    wireSortable(event.detail.elt);
  });
})();
