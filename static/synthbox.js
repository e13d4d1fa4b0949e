// SynthBox pages work without this script. With it: times show in the viewer's time
// zone (the exact time on hover), and parts marked data-live-url refresh every two
// seconds from a small JSON endpoint while the tab is visible.
(function () {
  "use strict";

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (node) {
      var moment = new Date(node.getAttribute("datetime"));
      if (isNaN(moment.getTime())) { return; }
      node.textContent = moment.toLocaleString();
      node.title = moment.toString();
    });
  }

  function apply(root, data) {
    Object.keys(data.values || {}).forEach(function (key) {
      root.querySelectorAll("[data-live]").forEach(function (node) {
        if (node.getAttribute("data-live") === key) {
          node.textContent = String(data.values[key]);
        }
      });
    });
    Object.keys(data.charts || {}).forEach(function (key) {
      root.querySelectorAll("[data-chart]").forEach(function (node) {
        if (node.getAttribute("data-chart") === key) {
          node.innerHTML = data.charts[key];  // SVG drawn by the server from numbers only
        }
      });
    });
  }

  function follow(root) {
    var url = root.getAttribute("data-live-url");
    var busy = false;
    function refresh() {
      if (document.hidden || busy) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) { if (data) { apply(root, data); } })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { busy = false; });
    }
    setInterval(refresh, 2000);
    document.addEventListener("visibilitychange", refresh);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("[data-live-url]").forEach(follow);
  });
}());
