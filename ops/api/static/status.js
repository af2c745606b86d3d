"use strict";
// The status page: /ui/health.json (the report `fleet health --json` prints) every few seconds.

const REFRESH_MS = 3000;
const HEALTHY = new Set(["ok", "rebuilding", "outdated"]);
// The ingest rate when its heartbeat carries none: appended events between two of its heartbeats.
let previousIngest = null;  // {beat, appended}
let measuredRate = null;

function stateCell(component) {
  const cls = HEALTHY.has(component.state) ? "ok" : component.state === "catching up" ? "warn" : "bad";
  return el("td", { class: cls, "data-component": component.name, "data-field": "state",
                    text: component.state });
}

function numCell(component, field, value) {
  return el("td", { class: "num", "data-component": component.name, "data-field": field,
                    text: fmtInt(value) });
}

function processRows(report) {
  return report.components.filter(c => c.kind === "process").map(c => {
    const beat = c.data.last_heartbeat;
    const age = typeof beat === "number" ? (report.at - beat).toFixed(1) : "never";
    return el("tr", {},
      el("td", { text: c.name }), stateCell(c),
      el("td", { class: "num", "data-component": c.name, "data-field": "heartbeat_age",
                 "data-last-heartbeat": beat, text: age }),
      el("td", { class: "num", text: c.data.pid ?? "-" }),
      el("td", { class: "num", "data-component": c.name, "data-field": "restarts",
                 text: c.data.supervisor ? fmtInt(c.data.supervisor.restarts || 0) : "-" }),
      el("td", { text: c.detail }));
  });
}

function ingestRows(report) {
  const find = (kind, name) => report.components.find(c => c.kind === kind && (!name || c.name === name));
  const ingest = find("process", "ingest");
  const consumer = find("consumer");
  const logc = find("log");
  const rows = [];
  let rate = null, measured = false;
  if (ingest) {
    const d = ingest.data;
    rate = d.events_per_sec ?? d.rate ?? null;
    if (rate === null && typeof d.appended === "number" && typeof d.last_heartbeat === "number") {
      const prev = previousIngest;
      if (prev && d.last_heartbeat > prev.beat) {
        measuredRate = d.appended >= prev.appended
          ? (d.appended - prev.appended) / (d.last_heartbeat - prev.beat) : null;  // restarted: wait
      }
      if (!prev || d.last_heartbeat !== prev.beat) previousIngest = { beat: d.last_heartbeat, appended: d.appended };
      rate = measuredRate;
      measured = true;
    }
    rows.push(el("tr", {}, el("th", { text: "rate (events/s)" }),
      el("td", { class: "num", "data-field": "ingest_rate",
                 text: rate === null ? "- (measured from the next heartbeat)"
                       : rate.toFixed(1) + (measured ? " (between its last two heartbeats)" : "") })));
    rows.push(el("tr", {}, el("th", { text: "appended since start" }),
      numCell(ingest, "appended", d.appended)));
  } else {
    rows.push(el("tr", {}, el("th", { text: "ingest" }), el("td", { class: "bad", text: "no heartbeat" })));
  }
  rows.push(el("tr", {}, el("th", { text: "lag (messages not yet in the log)" }),
    consumer ? numCell(consumer, "pending", consumer.data.pending) : el("td", { text: "-" })));
  if (logc) {
    rows.push(el("tr", {}, el("th", { text: "log head" }), numCell(logc, "head", logc.data.head)));
    rows.push(el("tr", {}, el("th", { text: "open quarantine" }),
      numCell(logc, "quarantine_open", logc.data.quarantine_open)));
  }
  return rows;
}

function progressCell(c) {
  const d = c.data;
  const building = c.state === "rebuilding" || c.state === "catching up";
  if (!building || typeof d.head !== "number" || !d.head) return el("td", { text: "-" });
  const done = typeof d.checkpoint === "number" ? d.checkpoint : 0;
  const pct = Math.min(100, 100 * done / d.head);
  const rate = d.events_per_sec ?? d.rate;
  const eta = d.eta_secs ?? (rate ? (d.lag || 0) / rate : null);
  const parts = [pct.toFixed(1) + " %"];
  if (rate) parts.push(fmtInt(rate) + " events/s");
  if (eta !== null && eta !== undefined) parts.push("ETA " + Math.round(eta) + " s");
  return el("td", { "data-component": c.name, "data-field": "progress" },
    el("progress", { max: d.head, value: done }), " ", parts.join(", "));
}

function projectionRows(report) {
  return report.components.filter(c => c.kind === "projection").map(c => el("tr", {},
    el("td", { text: c.name }), stateCell(c),
    numCell(c, "position", c.data.checkpoint), numCell(c, "lag", c.data.lag),
    progressCell(c), el("td", { text: c.detail })));
}

function componentRows(report) {
  return report.components.map(c => el("tr", {},
    el("td", { text: c.kind }), el("td", { text: c.name }), stateCell(c), el("td", { text: c.detail })));
}

function render(report) {
  const summary = document.getElementById("summary");
  const at = new Date(report.at * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  summary.className = "summary " + (report.ok ? "ok" : "bad");
  summary.setAttribute("data-at", report.at);
  summary.textContent = report.ok ? `fleet healthy at ${at}`
    : `fleet NOT HEALTHY at ${at} - culprits: ${report.culprits.join(", ")}`;
  const readiness = document.getElementById("readiness");
  if (typeof report.ready === "boolean") {  // /readyz's verdict, from the same assessment
    readiness.className = report.ready ? "ok" : "warn";
    readiness.textContent = report.ready ? "ready to serve reads"
      : "not ready: " + (report.not_ready || []).join("; ");
  }
  document.getElementById("notes").replaceChildren(
    ...(report.notes || []).map(note => el("li", { text: note })));
  fillRows(document.getElementById("processes"), processRows(report));
  fillRows(document.getElementById("ingest"), ingestRows(report));
  fillRows(document.getElementById("projections"), projectionRows(report));
  fillRows(document.getElementById("components"), componentRows(report));
}

async function refresh() {
  const updated = document.getElementById("updated");
  try {
    render(await getJSON("/ui/health.json"));
    updated.className = "";
    updated.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
  } catch (error) {
    updated.className = "bad";
    updated.textContent = "Could not refresh: " + error.message;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
