// fieldterm console: live updates by server-sent events (no polling, no CDN, no inline code).
// The server renders every fragment with autoescaping; this only swaps it in.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var badge = document.getElementById("stream");
  if (!live || !window.EventSource) { return; }
  var pending = null;
  function editing() {
    var a = document.activeElement;
    return a && live.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA");
  }
  function typed() {
    var inputs = live.querySelectorAll("input.note-input");
    for (var i = 0; i < inputs.length; i++) { if (inputs[i].value) { return true; } }
    return false;
  }
  function apply() {
    if (pending === null || editing() || typed()) { return; }
    live.innerHTML = pending;
    pending = null;
  }
  live.addEventListener("focusout", function () { setTimeout(apply, 0); });
  var q = live.getAttribute("data-query");
  var url = "/events?page=" + encodeURIComponent(live.getAttribute("data-page")) + (q ? "&" + q : "");
  var es = new EventSource(url);
  es.addEventListener("update", function (ev) {
    pending = JSON.parse(ev.data).html;
    apply();
  });
  es.addEventListener("logout", function () { window.location = "/login"; });
  es.onopen = function () {
    if (badge) { badge.className = "badge good"; badge.textContent = "\u25CF " + badge.getAttribute("data-live"); }
  };
  es.onerror = function () {
    if (badge) { badge.className = "badge bad"; badge.textContent = "\u2716 " + badge.getAttribute("data-lost"); }
  };
})();
