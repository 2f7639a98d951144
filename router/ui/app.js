// Switchboard's dashboard: reads the cluster overview from the router's API as a stream of
// server-sent events and draws it. Plain JavaScript, no build step, no dependencies.
//
// Security: the API token (when the router has tokens on) is asked for once, kept in this
// tab's sessionStorage and sent as an Authorization header; every value from the cluster is
// put on the page as text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "switchboard.token";
const LOOKUP_LIMIT = 8; // mailbox messages a lookup shows
let lastEvent = 0;
let updates = 0;

// ---- small helpers ----

function $(id) { return document.getElementById(id); }

// el makes an element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fill(parent, ...children) { parent.replaceChildren(...children.flat()); }

function rate(v) {
  if (v === undefined || v === null) return "–";
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

function ms(c) {
  if (!c) return "–";
  if (!c.ok) return "failed";
  return c.ms !== undefined ? c.ms.toFixed(1) + " ms" : "ok";
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 90) return s.toFixed(0) + "s ago";
  if (s < 5400) return (s / 60).toFixed(0) + "m ago";
  if (s < 129600) return (s / 3600).toFixed(0) + "h ago";
  return (s / 86400).toFixed(0) + "d ago";
}

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString() + " (" + ago(iso) + ")";
}

function duration(secs) {
  if (secs < 120) return Math.round(secs) + "s";
  if (secs < 7200) return Math.round(secs / 60) + "m";
  if (secs < 172800) return Math.round(secs / 3600) + "h";
  return Math.round(secs / 86400) + "d";
}

function epoch(n) { return n ? "0x" + Number(n).toString(16) : "–"; }

// ---- the API, with the token ----

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token()) h["Authorization"] = "Bearer " + token();
  return h;
}

class Unauthorized extends Error {}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const resp = await fetch(path, opts);
  if (resp.status === 401) { askToken("The router refused the token."); throw new Unauthorized(); }
  let body = null;
  const text = await resp.text();
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { error: text }; }
  return { status: resp.status, body };
}

function askToken(why) {
  $("login-error").textContent = token() ? why : "";
  sessionStorage.removeItem(TOKEN_KEY);
  $("forget").hidden = true;
  const d = $("login");
  if (!d.open) d.showModal();
  $("token").focus();
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  $("login").close();
  $("forget").hidden = false;
  stream();
});

$("forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });

// ---- the live stream ----

let streaming = false;

// stream reads /v1/dashboard/events with fetch (EventSource cannot send a header) and
// draws each overview; it reconnects when the stream ends.
async function stream() {
  if (streaming) return;
  streaming = true;
  let retry = 2000;
  try {
    const resp = await fetch("/v1/dashboard/events", { headers: headers(), cache: "no-store" });
    if (resp.status === 401) { askToken("The router refused the token."); return; }
    if (!resp.ok) { retry = 5000; throw new Error("stream answered " + resp.status); }
    if (token()) $("forget").hidden = false;
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n");
        if (data) render(JSON.parse(data));
      }
    }
  } catch (e) {
    console.warn("dashboard stream:", e);
  } finally {
    streaming = false;
  }
  if (!$("login").open) setTimeout(stream, retry);
}

setInterval(() => {
  const live = Date.now() - lastEvent < 3500;
  const c = $("conn");
  c.textContent = live ? "live" : "reconnecting";
  c.className = "conn " + (live ? "on" : "off");
}, 500);

// ---- drawing ----

function render(ov) {
  lastEvent = Date.now();
  renderSummary(ov);
  renderNodes(ov);
  renderQuarantines(ov);
  renderMonitor(ov);
  renderMailboxes(ov);
  $("footer").textContent = "overview of " + new Date(ov.at).toLocaleTimeString() + " · API description at /v1/openapi.json";
  document.body.dataset.updates = String(++updates);
}

function renderSummary(ov) {
  const live = ov.nodes.filter((n) => n.live).length;
  const clients = ov.nodes.reduce((s, n) => s + (n.health ? n.health.clients : 0), 0);
  const parts = [
    el("span", {}, el("b", {}, String(live)), " live node" + (live === 1 ? "" : "s")),
    el("span", {}, el("b", {}, String(clients)), " clients"),
    el("span", { class: ov.quarantines.length ? "bad" : "" }, el("b", {}, String(ov.quarantines.length)), " quarantined"),
    el("span", {}, "monitor: ", el("b", {}, ov.monitor.leader || "none")),
    el("span", {}, el("b", {}, String(ov.mailboxes.messages)), " queued"),
  ];
  fill($("summary"), parts);
}

function stateBadge(n) {
  const h = n.health;
  if (!h) return el("span", { class: "badge bad", title: n.health_error || "" }, "unreachable");
  const cls = h.status === 200 ? "ok" : (h.state === "quarantined" ? "bad" : "warn");
  const label = h.state + (h.status === 200 ? "" : " · out of service");
  return el("span", { class: "badge " + cls, title: [h.gate, h.reason].filter(Boolean).join("; ") }, label);
}

function checkBadges(n) {
  if (!n.health) return el("span", { class: "muted" }, n.health_error || "");
  const names = Object.keys(n.health.checks || {}).sort();
  return names.map((name) => {
    const c = n.health.checks[name];
    return el("span", { class: "badge small " + (c.ok ? "ok" : "bad"), title: c.detail || "" }, name);
  });
}

function renderNodes(ov) {
  const rows = ov.nodes.map((n) => el("tr", { "data-node": n.id, class: n.live ? "" : "gone" },
    el("td", {}, el("b", {}, n.id), n.live ? null : el("div", { class: "muted small" }, "left the live set")),
    el("td", {}, stateBadge(n)),
    el("td", { class: "num" }, epoch(n.epoch)),
    el("td", { class: "num" }, n.health ? String(n.health.clients) : "–"),
    el("td", { class: "num" }, rate(n.rates && n.rates.messages_in_per_s)),
    el("td", { class: "num" }, rate(n.rates && n.rates.messages_out_per_s)),
    el("td", { class: "num" }, rate(n.rates && n.rates.delivery_failures_per_s)),
    el("td", {}, checkBadges(n)),
    el("td", { class: "mono" }, n.mqtt_addr),
    el("td", {}, n.version),
    el("td", {}, ago(n.started_at))));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 11, class: "muted" }, "No live node.")));
  fill($("nodes").tBodies[0], rows);
}

function renderQuarantines(ov) {
  $("quarantines-empty").hidden = ov.quarantines.length > 0 || !!ov.quarantines_error;
  const cards = ov.quarantines.map((q) => el("div", { class: "card bad", "data-node": q.node },
    el("div", { class: "card-head" }, el("b", {}, q.node), " ", el("span", { class: "reason" }, q.reason)),
    el("div", { class: "muted" }, "by ", el("b", {}, q.by), " · ", when(q.at)),
    q.evidence !== undefined ? el("details", {}, el("summary", {}, "evidence"),
      el("pre", {}, JSON.stringify(q.evidence, null, 2))) : null));
  if (ov.quarantines_error) cards.push(el("p", { class: "error" }, "marks unreadable: " + ov.quarantines_error));
  fill($("quarantines"), cards);
}

function renderMonitor(ov) {
  const m = ov.monitor;
  const st = m.state;
  const parts = [];
  if (m.leader) parts.push("Leader ", el("b", {}, m.leader), m.admin_addr ? " (" + m.admin_addr + ")" : "");
  else parts.push("No monitor leads.");
  if (st) {
    parts.push(" · ", String(st.rounds), " rounds");
    if (st.last_decision) {
      parts.push(" · last decision: ", el("b", {}, st.last_decision));
      if (st.last_decision_at) parts.push(" (" + ago(st.last_decision_at) + ")");
    }
  }
  if (m.error) parts.push(" ", el("span", { class: "error" }, m.error));
  fill($("monitor-summary"), parts);
  const probes = st && st.nodes ? st.nodes : {};
  const rows = Object.keys(probes).sort().map((id) => {
    const p = probes[id];
    const failed = !(p.mqtt_ping && p.mqtt_ping.ok && p.end_to_end && p.end_to_end.ok && p.readiness && p.readiness.ok);
    const errors = [p.mqtt_ping, p.end_to_end, p.readiness].filter((c) => c && c.error).map((c) => c.error);
    return el("tr", { "data-node": id, class: failed ? "failed" : "" },
      el("td", {}, el("b", {}, id)),
      el("td", {}, ago(p.at)),
      el("td", { class: "num" }, ms(p.mqtt_ping)),
      el("td", { class: "num" }, ms(p.end_to_end)),
      el("td", { class: "num" }, ms(p.readiness)),
      el("td", { class: "num" }, rate(p.messages_in_per_s)),
      el("td", { class: "num" }, rate(p.messages_out_per_s)),
      el("td", { class: "small" }, (p.failing || []).concat(errors).join("; ")));
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No probe results yet.")));
  fill($("probes").tBodies[0], rows);
}

function bucketLabel(b) {
  if (b.max === undefined) return "> " + (b.min - 1).toLocaleString();
  if (b.min === b.max) return b.min.toLocaleString();
  return b.min.toLocaleString() + "–" + b.max.toLocaleString();
}

function renderMailboxes(ov) {
  const mb = ov.mailboxes;
  const summary = [];
  if (!mb.sampled_at) summary.push("Not sampled yet.");
  else {
    summary.push(el("b", {}, mb.messages.toLocaleString()), " messages in ",
      el("b", {}, mb.mailboxes.toLocaleString()), " mailboxes",
      mb.complete ? " (all of them)" : " (a bounded sample)", ", read ", ago(mb.sampled_at));
  }
  if (mb.error) summary.push(" ", el("span", { class: "error" }, mb.error));
  fill($("mailbox-summary"), summary);
  const buckets = mb.buckets || [];
  const most = Math.max(1, ...buckets.map((b) => b.count));
  fill($("histogram"), buckets.map((b) => el("div", { class: "bar-row" },
    el("span", { class: "bar-label" }, bucketLabel(b)),
    el("span", { class: "bar-track" }, el("span", { class: "bar", "data-w": b.count / most })),
    el("span", { class: "bar-count" }, b.count.toLocaleString()))));
  // Widths are set from script: the style sheet policy allows no inline style attributes.
  for (const bar of $("histogram").querySelectorAll(".bar")) bar.style.width = (Number(bar.dataset.w) * 100).toFixed(1) + "%";
  const rows = (mb.deepest || []).map((d) => el("tr", {},
    el("td", {}, el("a", { href: "#", onclick: (e) => { e.preventDefault(); lookup(d.client); } }, d.client)),
    el("td", { class: "num" }, d.depth.toLocaleString())));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 2, class: "muted" }, "Every mailbox is empty.")));
  fill($("deepest").tBodies[0], rows);
}

// ---- client lookup and send ----

function payloadText(b64) {
  try {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const s = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return s.length > 80 ? s.slice(0, 80) + "…" : s;
  } catch (_) {
    return "(" + atob(b64).length + " bytes, not text)";
  }
}

async function lookup(id) {
  $("lookup-id").value = id;
  const out = $("lookup-result");
  try {
    const path = "/v1/clients/" + encodeURIComponent(id);
    const [c, mb] = await Promise.all([api(path), api(path + "/mailbox?limit=" + LOOKUP_LIMIT)]);
    if (c.status !== 200) { fill(out, el("p", { class: "error" }, c.body && c.body.error)); return; }
    const info = c.body;
    const where = info.online
      ? ["online on ", el("b", {}, info.node), " (epoch " + epoch(info.epoch) + ") since " + when(info.since)]
      : ["offline"];
    const parts = [el("p", { id: "lookup-where" }, el("b", {}, info.client), " is ", ...where, " · ",
      el("b", {}, String(info.mailbox_depth)), " waiting in its mailbox")];
    if (mb.status === 200 && mb.body.messages.length > 0) {
      const shown = mb.body.messages.length;
      parts.push(el("p", { class: "muted small" }, shown < mb.body.depth ? `the oldest ${shown} of ${mb.body.depth}:` : "oldest first:"));
      parts.push(el("table", { id: "lookup-mailbox" },
        el("thead", {}, el("tr", {}, el("th", {}, "id"), el("th", {}, "topic"), el("th", {}, "payload"), el("th", { class: "num" }, "QoS"),
          el("th", { class: "num" }, "expires in"))),
        el("tbody", {}, mb.body.messages.map((m) => el("tr", { title: "seq " + m.seq },
          el("td", { class: "mono small" }, m.id), el("td", { class: "mono" }, m.topic),
          el("td", {}, payloadText(m.payload)), el("td", { class: "num" }, String(m.qos)),
          el("td", { class: "num" }, duration(m.expires_in)))))));
    }
    fill(out, parts);
  } catch (e) {
    if (!(e instanceof Unauthorized)) fill(out, el("p", { class: "error" }, String(e)));
  }
}

$("lookup-form").addEventListener("submit", (ev) => { ev.preventDefault(); lookup($("lookup-id").value.trim()); });

$("send-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const to = $("send-to").value.trim();
  const body = { to, payload: $("send-payload").value, qos: Number($("send-qos").value) };
  const ttl = $("send-ttl").value.trim();
  if (ttl) body.ttl = ttl;
  try {
    const r = await api("/v1/messages", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    $("send-result").textContent = r.status + " " + JSON.stringify(r.body);
    $("send-result").className = r.status === 200 ? "ok" : "error";
    if ($("lookup-id").value.trim() === to) lookup(to);
  } catch (e) {
    if (!(e instanceof Unauthorized)) $("send-result").textContent = String(e);
  }
});

stream();
