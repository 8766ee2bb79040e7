// The shir node's status page: read-only views of the node's own API.
// The token comes in the address' fragment (#token=...), which browsers never
// send to a server; it is kept for this tab only and sent as a bearer token.
"use strict";

var token = "";
var timer = null;

function $(id) { return document.getElementById(id); }

function text(el, s) { el.textContent = s === undefined || s === null ? "" : String(s); return el; }

function cell(tr, s, cls) {
  var td = document.createElement("td");
  text(td, s);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function rows(tbody, list, fill) {
  while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
  list.forEach(function (x) {
    var tr = document.createElement("tr");
    fill(tr, x);
    tbody.appendChild(tr);
  });
}

function kv(table, pairs) {
  rows(table.querySelector("tbody"), pairs, function (tr, p) {
    var th = document.createElement("th");
    text(th, p[0]);
    tr.appendChild(th);
    cell(tr, p[1]);
  });
}

function showError(msg) {
  var e = $("error");
  e.hidden = !msg;
  text(e, msg || "");
}

function api(method, path) {
  return fetch(path, { method: method, headers: { "Authorization": "Bearer " + token },
                       cache: "no-store" })
    .then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) throw new Error((body && (body.error || body.message)) || ("HTTP " + r.status));
        return body;
      });
    });
}

function duration(s) {
  s = Math.floor(s || 0);
  var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
}

function badge(el, status) {
  text(el, status);
  el.className = "badge s-" + status;
}

function renderNode(n) {
  text($("node-name"), n.name);
  badge($("node-status"), n.status);
  text($("st-status"), n.status);
  text($("st-detail"), n.statusDetail || "—");
  text($("st-version"), n.version);
  text($("st-uptime"), duration(n.uptimeSeconds));
  text($("st-config"), n.configFile);
  text($("st-proxy"), n.proxyMode);
  var ch = n.channels || [];
  $("no-channels").hidden = ch.length > 0;
  rows($("channels").querySelector("tbody"), ch, function (tr, c) {
    tr.setAttribute("data-state", c.state);
    tr.setAttribute("data-name", c.name);
    cell(tr, c.name);
    var td = cell(tr, "");
    var b = document.createElement("span");
    badge(b, c.state);
    td.appendChild(b);
    cell(tr, (c.endpoint || "") + (c.path ? " /" + c.path : ""));
    cell(tr, c.connects);
    cell(tr, c.requestsInFlight);
    var cause = c.lastError || "";
    if (c.nextRetryInSeconds !== undefined && c.state !== "Connected")
      cause += (cause ? " — " : "") + "next try in " + c.nextRetryInSeconds + " s";
    cell(tr, cause, c.state === "Connected" ? "" : "cause");
  });
  text($("updated"), new Date().toLocaleTimeString());
}

function refreshStatus() {
  return api("GET", "/api/node").then(function (n) { showError(""); renderNode(n); })
    .catch(function (e) { showError("Cannot read the node's status: " + e.message); });
}

function refreshSettings() {
  api("GET", "/api/settings").then(function (s) {
    var p = s.proxy || {}, pairs = [];
    Object.keys(p).forEach(function (k) {
      if (k === "decisions") return;
      var v = p[k];
      if (v === "" || v === null) return;
      pairs.push([k, typeof v === "object" ? JSON.stringify(v) : v]);
    });
    kv($("proxy"), pairs);
    rows($("proxy-decisions").querySelector("tbody"), p.decisions || [], function (tr, d) {
      cell(tr, d.endpoint);
      cell(tr, d.direct ? "direct" : (d.proxies || []).join(", "));
      cell(tr, d.reason);
    });
    var sec = s.security || {};
    kv($("security"), [
      ["allowed folders", (sec.allowedFolders || []).join("  ") || "(none)"],
      ["folder path validation", sec.localFolderPathValidation ? "on" : "OFF"],
      ["stores on this machine", sec.localMachineAccess ? "allowed" : "refused"]]);
    kv($("files"), [["configuration", s.configFile], ["state directory", s.stateDir],
                    ["log", s.logFile === "-" ? "standard error (the journal)" : s.logFile],
                    ["status page", s.statusPage], ["metrics", s.metrics || "(off)"]]);
  }).catch(function (e) { showError("Cannot read the settings: " + e.message); });
  api("GET", "/api/credentials").then(function (c) {
    rows($("credentials").querySelector("tbody"), c.credentials || [], function (tr, x) {
      cell(tr, x.name); cell(tr, x.version); cell(tr, x.updated);
    });
  }).catch(function (e) { showError("Cannot read the credentials: " + e.message); });
}

function refreshLogs() {
  api("GET", "/api/logs").then(function (l) {
    text($("logs"), (l.lines || []).map(function (s) { return s.replace(/\s+$/, ""); }).join("\n"));
    var pre = $("logs");
    pre.scrollTop = pre.scrollHeight;
  }).catch(function (e) { showError("Cannot read the log: " + e.message); });
}

function renderDiagnose(d) {
  var out = $("diag-result"), sum = $("diag-summary"), msgs = $("diag-messages");
  while (out.firstChild) out.removeChild(out.firstChild);
  if (d.state === "running") { text($("diag-state"), "running…"); return false; }
  $("diag-run").disabled = false;
  if (d.state !== "done") { text($("diag-state"), ""); return true; }
  text($("diag-state"), "finished " + d.finished + (d.timedOut ? " (timed out)" : ""));
  var broken = [];
  var eps = (d.report && d.report.endpoints) || [];
  eps.forEach(function (ep) {
    var h = document.createElement("div");
    h.className = "endpoint";
    text(h, ep.endpoint + (ep.what ? " (" + ep.what + ")" : ""));
    out.appendChild(h);
    var t = document.createElement("table");
    t.className = "steps";
    t.setAttribute("data-endpoint", ep.endpoint);
    var tb = document.createElement("tbody");
    t.appendChild(tb);
    rows(tb, ep.steps || [], function (tr, s) {
      tr.className = s.step === ep.broken ? "step-bad" : (s.result === "ok" ? "step-ok" : "");
      cell(tr, s.step); cell(tr, s.result); cell(tr, s.detail);
    });
    out.appendChild(t);
    if (ep.broken) {
      var st = (ep.steps || []).filter(function (s) { return s.step === ep.broken; })[0];
      broken.push(ep.endpoint + ": failing step " + ep.broken + (st && st.detail ? " — " + st.detail : ""));
    }
  });
  sum.hidden = false;
  if (broken.length) {
    sum.className = "summary bad";
    text(sum, broken.join("\n"));
  } else if (eps.length) {
    sum.className = "summary good";
    text(sum, "Every step passed: the node can reach its relay.");
  } else {
    sum.className = "summary bad";
    text(sum, "diagnose could not run (exit " + d.exitCode + ")");
  }
  msgs.hidden = !d.messages;
  text(msgs, d.messages || "");
  return true;
}

function pollDiagnose() {
  api("GET", "/api/diagnose").then(function (d) {
    if (!renderDiagnose(d)) setTimeout(pollDiagnose, 500);
  }).catch(function (e) { $("diag-run").disabled = false; showError("diagnose: " + e.message); });
}

function runDiagnose() {
  $("diag-run").disabled = true;
  $("diag-summary").hidden = true;
  text($("diag-state"), "starting…");
  api("POST", "/api/diagnose").then(pollDiagnose)
    .catch(function (e) { $("diag-run").disabled = false; showError("diagnose: " + e.message); });
}

function show(tab) {
  ["status", "settings", "diagnostics"].forEach(function (t) {
    $(t).hidden = t !== tab;
    $("tab-" + t).classList.toggle("active", t === tab);
  });
  if (tab === "settings") refreshSettings();
  if (tab === "diagnostics") { refreshLogs(); api("GET", "/api/diagnose").then(renderDiagnose).catch(function () {}); }
}

function start() {
  var m = /(?:^#|&)token=([0-9a-f]+)/.exec(location.hash);
  if (m) {
    token = m[1];
    sessionStorage.setItem("shir-token", token);
    history.replaceState(null, "", location.pathname);
  } else {
    token = sessionStorage.getItem("shir-token") || "";
  }
  if (!token) {
    showError("No token: open the address that `shirctl ui` prints.");
    return;
  }
  Array.prototype.forEach.call(document.querySelectorAll(".tab"), function (b) {
    b.addEventListener("click", function () { show(b.getAttribute("data-tab")); });
  });
  $("diag-run").addEventListener("click", runDiagnose);
  $("logs-refresh").addEventListener("click", refreshLogs);
  refreshStatus();
  timer = setInterval(refreshStatus, 2000);
}

document.addEventListener("DOMContentLoaded", start);
