"use strict";
// Helpers of the status and node pages. Every value from the server becomes text (textContent,
// setAttribute), never markup: node ids and properties may hold anything.

/** A new element: `attrs` are attributes ("text" sets its text), `children` nodes or strings. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child !== undefined && child !== null) node.append(child);
  }
  return node;
}

/** An integer with thousands separators, or "-" when there is none. */
function fmtInt(value) {
  return typeof value === "number" && isFinite(value) ? Math.round(value).toLocaleString("en-US") : "-";
}

/** The node page of a node id or path. */
function nodeHref(id, after) {
  const base = "/ui/nodes/" + encodeURIComponent(id);
  return after ? base + "?after=" + encodeURIComponent(after) : base;
}

/** A property value as text: strings as they are, anything else as JSON. */
function asText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** GET a JSON document; rejects with the server's `detail` when the answer is an error. */
async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.status + " " + response.statusText;
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return body;
}

/** Replace a table body's rows. */
function fillRows(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
}
