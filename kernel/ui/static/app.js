// statusflow board: the small glue between htmx, SortableJS and the pages.
// No inline scripts run (the pages' Content-Security-Policy forbids them): behaviour
// is declared with data- attributes and wired here.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Every request htmx makes carries the session's CSRF token.
  // data-send-shown="SELECTOR": a refresh of the element says how many of its children
  // match SELECTOR and the data-seq of the last (the order page's timeline: the pages
  // loaded with More stay).
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
    var element = event.detail.elt;
    if (element && element.dataset && element.dataset.sendShown) {
      var shown = element.querySelectorAll(":scope > " + element.dataset.sendShown);
      event.detail.parameters.shown = String(shown.length);
      if (shown.length && shown[shown.length - 1].dataset.seq) {
        event.detail.parameters.oldest = shown[shown.length - 1].dataset.seq;
      }
    }
  });

  // A 4xx answer carrying a form with its error replaces the form (htmx swaps only 2xx
  // by default).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 409 || status === 422 || status === 400 || status === 404) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // data-live="URL": a server-sent event stream; each message named "changed" triggers
  // "live-changed" on the element (which then refreshes itself with hx-get).
  function connectLive(root) {
    root.querySelectorAll("[data-live]").forEach(function (element) {
      if (element.dataset.liveConnected) {
        return;
      }
      element.dataset.liveConnected = "1";
      var source = new EventSource(element.dataset.live);
      source.addEventListener("changed", function () {
        if (window.htmx) {
          window.htmx.trigger(element, "live-changed");
        }
      });
    });
  }

  window.statusflow = { csrfToken: csrfToken, connectLive: connectLive };

  document.addEventListener("DOMContentLoaded", function () {
    connectLive(document);
  });
  document.addEventListener("htmx:load", function (event) {
    connectLive(event.detail.elt);
  });
})();
