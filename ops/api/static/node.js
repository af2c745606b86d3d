"use strict";
// A node page: /graph/nodes/{id} and a page of /graph/nodes/{id}/neighbors, `after` from the URL.

const PAGE = 50;
const PREFIX = "/ui/nodes/";

function showError(message) {
  const error = document.getElementById("error");
  error.textContent = message;
  error.hidden = false;
}

function propRows(props) {
  return Object.keys(props).sort().map(name => el("tr", {},
    el("th", { text: name }),
    el("td", { "data-field": "prop", "data-name": name, text: asText(props[name]) })));
}

function neighborRows(neighbors) {
  return neighbors.map(n => el("tr", {},
    el("td", { text: n.edge }),
    el("td", { text: n.direction === "out" ? "\u2192" : "\u2190" }),
    el("td", {}, el("a", { href: nodeHref(n.id), "data-field": "neighbor", text: n.id })),
    el("td", { text: n.props ? asText(n.props) : "" })));
}

async function load() {
  const ref = decodeURIComponent(location.pathname.slice(PREFIX.length));
  const after = new URLSearchParams(location.search).get("after");
  const title = document.getElementById("title");
  title.textContent = ref;
  document.title = ref + " - graphfleet";
  let node;
  try {
    node = await getJSON("/graph/nodes/" + encodeURIComponent(ref));
  } catch (error) {
    title.textContent = "no node " + ref;
    showError(error.message);
    return;
  }
  title.replaceChildren(el("span", { "data-field": "id", text: node.id }), " ",
                        el("small", { "data-field": "type", text: "(" + node.type + ")" }));
  if (node.id !== ref) title.append(el("small", { text: " resolved from " + ref }));
  fillRows(document.getElementById("props"), propRows(node.props));
  document.getElementById("props-section").hidden = false;
  let url = "/graph/nodes/" + encodeURIComponent(node.id) + "/neighbors?limit=" + PAGE;
  if (after) url += "&after=" + encodeURIComponent(after);
  let page;
  try {
    page = await getJSON(url);
  } catch (error) {
    showError(error.message);
    return;
  }
  fillRows(document.getElementById("neighbors"), neighborRows(page.neighbors));
  const total = (page.total_is_lower_bound ? "at least " : "") + fmtInt(page.total);
  const paging = document.getElementById("paging");
  paging.setAttribute("data-total", page.total);
  paging.textContent = page.truncated || after
    ? `showing ${fmtInt(page.neighbors.length)} of ${total} edges` + (page.truncated ? "" : " (last page)")
    : `${total} edges`;
  const first = document.getElementById("first");
  if (after) { first.href = nodeHref(node.id); first.hidden = false; }
  const next = document.getElementById("next");
  if (page.next) { next.href = nodeHref(node.id, page.next); next.hidden = false; }
  document.getElementById("neighbors-section").hidden = false;
}

load();
