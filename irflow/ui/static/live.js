// Progressive enhancement: while a run is in flight, re-fetch the runs section every 2 s and swap it in.
// When no run is in flight any more, reload once so the deadlines and the audit trail catch up.
// Without JavaScript the page works the same; reloading it shows the progress.
(function () {
  "use strict";
  function poll() {
    var box = document.getElementById("runs");
    if (!box || box.getAttribute("data-live") !== "true") { return; }
    var url = box.getAttribute("data-live-url");
    window.setTimeout(function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (answer) {
          if (answer.redirected || !answer.ok) { window.location.reload(); return null; }
          return answer.text();
        })
        .then(function (html) {
          if (html === null) { return; }
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("runs");
          var current = document.getElementById("runs");
          if (!fresh || !current) { return; }
          if (fresh.getAttribute("data-live") !== "true") { window.location.reload(); return; }
          current.replaceWith(document.importNode(fresh, true));
          poll();
        })
        .catch(function () { poll(); });
    }, 2000);
  }
  document.addEventListener("DOMContentLoaded", poll);
})();
