// ferry's dashboard script: live updates, relative times, copy buttons and
// a run's streaming log. The pages work without it; it only keeps them
// current. Plain script, no build step.
"use strict";

(function () {
  var conn = document.getElementById("conn");

  function say(text) {
    if (conn) conn.textContent = text;
  }

  // Relative times: the server writes absolute UTC times so a page's HTML
  // only changes when its data does; the browser says "3 min ago".
  function ago(el) {
    var t = Date.parse(el.getAttribute("datetime"));
    if (isNaN(t)) return;
    var s = Math.round((Date.now() - t) / 1000);
    var text;
    if (s < 0) {
      s = -s;
      text = s < 60 ? "in " + s + " s" : s < 3600 ? "in " + Math.round(s / 60) + " min" : "in " + Math.round(s / 3600) + " h";
    } else if (s < 5) text = "just now";
    else if (s < 60) text = s + " s ago";
    else if (s < 3600) text = Math.round(s / 60) + " min ago";
    else if (s < 86400) text = Math.round(s / 3600) + " h ago";
    else text = Math.round(s / 86400) + " d ago";
    if (!el.title) el.title = el.textContent;
    el.textContent = text;
  }

  function times(root) {
    root.querySelectorAll("time.ago").forEach(ago);
  }

  // Copy buttons copy data-copy. navigator.clipboard needs a secure
  // context (https or localhost); elsewhere a hidden textarea does it.
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-copy]");
    if (!b) return;
    var text = b.getAttribute("data-copy");
    var done = function () {
      b.setAttribute("data-copied", "1");
      say("Copied " + text);
      setTimeout(function () { b.removeAttribute("data-copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { say("Copy failed; select the text instead"); });
      return;
    }
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.style.position = "absolute";
    ta.style.left = "-9999px";
    document.body.appendChild(ta);
    ta.select();
    try { document.execCommand("copy"); done(); } catch (e) { say("Copy failed; select the text instead"); }
    document.body.removeChild(ta);
    // why: selecting the textarea took the focus; give it back, so the
    // keyboard stays on the button.
    b.focus();
  });

  // Live updates: the server renders the page's live part again whenever
  // what it shows changes and sends it as an event; it replaces #live,
  // unless someone is typing in it (then it waits for the blur).
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  var pending = null;

  function busy() {
    var a = document.activeElement;
    return a && live.contains(a) && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT");
  }

  function swap(html) {
    if (busy()) {
      pending = html;
      return;
    }
    pending = null;
    var a = document.activeElement;
    var inLive = a && a !== live && live.contains(a);
    var focusID = inLive ? a.id : "";
    // why: most links and buttons have no id; someone on the keyboard
    // keeps their place by its position among the live part's controls,
    // rather than being sent back to the top of the page.
    var focusAt = inLive ? Array.prototype.indexOf.call(live.querySelectorAll(focusable), a) : -1;
    live.innerHTML = html;
    times(live);
    if (!inLive) return;
    var again = focusID ? document.getElementById(focusID) : live.querySelectorAll(focusable)[focusAt];
    if (again) again.focus();
    else main.focus();
  }
  var focusable = "a[href], button, input, select, textarea, [tabindex]";

  live && live.addEventListener("focusout", function () {
    setTimeout(function () { if (pending !== null) swap(pending); }, 0);
  });

  if (main && live && main.dataset.live && window.EventSource) {
    var es = new EventSource("/live?path=" + encodeURIComponent(main.dataset.live) + "&h=" + encodeURIComponent(main.dataset.liveHash || ""));
    es.addEventListener("live", function (ev) {
      say("");
      swap(ev.data);
    });
    es.addEventListener("signedout", function () {
      es.close();
      location.assign("/signin?next=" + encodeURIComponent(location.pathname + location.search));
    });
    es.onerror = function () { say("Live updates paused; reconnecting…"); };
    es.onopen = function () { say(""); };
  }

  // A run's log streams into pre#log from its data-stream URL: one "line"
  // event per line (id = seq, so a reconnect resumes), "end" when the run
  // is over.
  var log = document.getElementById("log");
  if (log && log.dataset.stream && window.EventSource) {
    var ls = new EventSource(log.dataset.stream);
    var count = document.getElementById("log-count");
    ls.addEventListener("line", function (ev) {
      var l = JSON.parse(ev.data);
      var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      var row = document.createElement("span");
      row.className = "line";
      row.setAttribute("data-seq", l.seq);
      var step = document.createElement("span");
      step.className = "step";
      step.textContent = l.step;
      row.appendChild(step);
      row.appendChild(document.createTextNode(l.text + "\n"));
      log.appendChild(row);
      if (count) count.textContent = String(log.querySelectorAll(".line").length);
      if (atEnd) log.scrollTop = log.scrollHeight;
    });
    ls.addEventListener("end", function () {
      ls.close();
      log.setAttribute("data-ended", "1");
    });
  }

  times(document);
  setInterval(function () { times(document); }, 30000);
})();
