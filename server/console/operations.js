// The operations page: filters, a table with keyset paging, rows kept live from /v1/events.

import { api, openStream, query } from "./api.js";
import {
  STATES,
  ageCell,
  errorBanner,
  h,
  labelChips,
  labelsText,
  parseLabels,
  parseTime,
  progressBar,
  shortName,
  stateBadge,
  stepText,
  toInt,
} from "./format.js";

const PAGE_SIZE = 25;

/** Filters as they stand in the hash (#/operations?states=RUNNING&workflow=...): the page can be bookmarked. */
function filtersFrom(search) {
  const labels = {};
  for (const [key, value] of search.entries()) {
    const match = /^labels\[(.+)\]$/.exec(key);
    if (match) labels[match[1]] = value;
  }
  return {
    states: search.getAll("states").map(shortName).filter((state) => STATES.includes(state)),
    workflow: search.get("workflow") || "",
    requester: search.get("requester") || "",
    labels,
    createdAfter: search.get("createdAfter") || "",
    createdBefore: search.get("createdBefore") || "",
  };
}

function toLocalInput(rfc3339) {
  const time = parseTime(rfc3339);
  if (!time) return "";
  const local = new Date(time.getTime() - time.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

function fromLocalInput(value) {
  if (!value) return "";
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? "" : time.toISOString();
}

function fullStates(states) {
  return states.map((state) => `OPERATION_STATE_${state}`);
}

export function renderOperations(main, search) {
  const filters = filtersFrom(search);
  const tokens = [""]; // page tokens of the pages shown so far: tokens[i] loads page i
  const rows = new Map(); // operation id -> {row, lastSeq, operation}
  let stream = null;
  let disposed = false;
  // Where the live stream starts: the cursor the first page came with, so it sends only what changed after that
  // read (not the whole history), and misses nothing.
  let eventsCursor = "";

  const status = h("span", { class: "live", "data-testid": "live-status", role: "status" }, "");
  const message = h("div", { "data-testid": "list-message" });
  const tbody = h("tbody", { "data-testid": "operations-body" });
  const previous = h("button", { type: "button", "data-testid": "previous-page", disabled: true }, "← Newer");
  const next = h("button", { type: "button", "data-testid": "next-page", disabled: true }, "Older →");
  const pageLabel = h("span", { class: "muted", "data-testid": "page-number" }, "page 1");

  const form = filterForm(filters);
  main.replaceChildren(
    h("div", { class: "title-row" }, h("h1", {}, "Operations"), status),
    form,
    message,
    h(
      "table",
      { class: "operations", "data-testid": "operations-table" },
      h(
        "thead",
        {},
        h("tr", {}, ["State", "Operation", "Workflow", "Step", "Progress", "Requester", "Labels", "Age"].map((name) => h("th", { scope: "col" }, name))),
      ),
      tbody,
    ),
    h("nav", { class: "pager", "aria-label": "Pages of operations" }, previous, pageLabel, next),
  );

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    let labels;
    try {
      labels = parseLabels(data.get("labels"));
    } catch (error) {
      message.replaceChildren(errorBanner(error.message));
      return;
    }
    const params = new URLSearchParams();
    for (const state of data.getAll("states")) params.append("states", state);
    for (const name of ["workflow", "requester"]) if (data.get(name)) params.set(name, data.get(name).trim());
    for (const [key, value] of Object.entries(labels)) params.append(`labels[${key}]`, value);
    const after = fromLocalInput(data.get("createdAfter"));
    const before = fromLocalInput(data.get("createdBefore"));
    if (after) params.set("createdAfter", after);
    if (before) params.set("createdBefore", before);
    const text = params.toString();
    const hash = `#/operations${text ? `?${text}` : ""}`;
    if (location.hash === hash) load(0);
    else location.hash = hash;
  });

  previous.addEventListener("click", () => load(tokens.length - 2));
  next.addEventListener("click", () => load(tokens.length));

  function matches(operation) {
    if (filters.states.length && !filters.states.includes(shortName(operation.state))) return false;
    if (filters.workflow && operation.workflow !== filters.workflow) return false;
    if (filters.requester && operation.requester !== filters.requester) return false;
    for (const [key, value] of Object.entries(filters.labels)) if ((operation.labels || {})[key] !== value) return false;
    const created = parseTime(operation.createTime);
    const after = parseTime(filters.createdAfter);
    const before = parseTime(filters.createdBefore);
    if (after && created && created < after) return false;
    if (before && created && created >= before) return false;
    return true;
  }

  async function load(page) {
    // page: the index of the page to show; tokens[page] must be known, or be the next page's token.
    message.replaceChildren();
    const token = page < tokens.length ? tokens[page] : next.dataset.token;
    let reply;
    try {
      reply = await api.listOperations({
        states: fullStates(filters.states),
        workflow: filters.workflow,
        requester: filters.requester,
        labels: filters.labels,
        createdAfter: filters.createdAfter,
        createdBefore: filters.createdBefore,
        pageSize: PAGE_SIZE,
        pageToken: token,
      });
    } catch (error) {
      message.replaceChildren(errorBanner(error.message));
      return;
    }
    if (disposed) return;
    if (!stream) eventsCursor = reply.eventsCursor || "";
    tokens.length = page;
    tokens.push(token || "");
    next.dataset.token = reply.nextPageToken || "";
    next.disabled = !reply.nextPageToken;
    previous.disabled = page === 0;
    pageLabel.textContent = `page ${page + 1}`;
    rows.clear();
    tbody.replaceChildren();
    for (const operation of reply.operations || []) {
      const row = operationRow(operation);
      rows.set(operation.id, { row, lastSeq: toInt(operation.lastSeq), operation });
      tbody.append(row);
    }
    if (!reply.operations || !reply.operations.length) {
      tbody.append(h("tr", { class: "empty", "data-testid": "no-operations" }, h("td", { colspan: "8" }, "No operations match.")));
    }
  }

  function onEvent(event) {
    const operation = event.operation;
    if (!operation || !operation.id) return;
    const known = rows.get(operation.id);
    const seq = toInt(operation.lastSeq || event.seq);
    if (known) {
      if (seq < known.lastSeq) return; // an older event replayed: the row already shows later
      const row = operationRow(operation);
      known.row.replaceWith(row);
      rows.set(operation.id, { row, lastSeq: seq, operation });
      return;
    }
    // A new operation: at the top of the first page, when it matches and is newer than every row shown.
    if (tokens.length !== 1 || !matches(operation)) return;
    const created = parseTime(operation.createTime);
    for (const { operation: shown } of rows.values()) {
      const other = parseTime(shown.createTime);
      if (created && other && created < other) return;
    }
    const empty = tbody.querySelector("[data-testid=no-operations]");
    if (empty) empty.remove();
    const row = operationRow(operation);
    rows.set(operation.id, { row, lastSeq: seq, operation });
    tbody.prepend(row);
  }

  function subscribe() {
    // States are filtered here, not by the server: WatchEvents filters on an operation's current state, which
    // would leave a row that has just left the filtered states showing its old state.
    const path = `/v1/events${query({ workflow: filters.workflow, requester: filters.requester, labels: filters.labels, afterCursor: eventsCursor })}`;
    stream = openStream(path, {
      onMessage: ({ data }) => onEvent(data),
      onStatus: (name, detail) => {
        status.textContent = { connecting: "connecting…", live: "● live", reconnecting: "reconnecting…", failed: `live updates stopped: ${detail || ""}`, ended: "" }[name] ?? name;
        status.dataset.status = name;
      },
    });
  }

  load(0).then(() => {
    if (!disposed) subscribe();
  });

  return () => {
    disposed = true;
    if (stream) stream.close();
  };
}

function filterForm(filters) {
  const stateBoxes = STATES.map((state) =>
    h(
      "label",
      { class: "check" },
      h("input", { type: "checkbox", name: "states", value: state, checked: filters.states.includes(state), "data-testid": `filter-state-${state}` }),
      ` ${state}`,
    ),
  );
  return h(
    "form",
    { class: "filters", "data-testid": "filters", role: "search" },
    h("fieldset", { class: "states" }, h("legend", {}, "State"), stateBoxes),
    field("Workflow", "workflow", filters.workflow, { "data-testid": "filter-workflow", placeholder: "any" }),
    field("Requester", "requester", filters.requester, { "data-testid": "filter-requester", placeholder: "any" }),
    field("Labels (key=value, …)", "labels", labelsText(filters.labels), { "data-testid": "filter-labels", placeholder: "team=data" }),
    field("Created after", "createdAfter", toLocalInput(filters.createdAfter), { type: "datetime-local", "data-testid": "filter-created-after" }),
    field("Created before", "createdBefore", toLocalInput(filters.createdBefore), { type: "datetime-local", "data-testid": "filter-created-before" }),
    h("div", { class: "form-actions" }, h("button", { type: "submit", "data-testid": "apply-filters" }, "Apply"), h("a", { href: "#/operations", class: "button-link" }, "Clear")),
  );
}

function field(label, name, value, attributes = {}) {
  const id = `filter-${name}`;
  return h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, name, value: value || "", type: "text", ...attributes }));
}

function operationRow(operation) {
  const id = operation.id;
  return h(
    "tr",
    { "data-testid": "operation-row", "data-id": id, "data-state": shortName(operation.state) },
    h("td", {}, stateBadge(operation.state)),
    h("td", {}, h("a", { href: `#/operations/${encodeURIComponent(id)}`, class: "mono", "data-testid": "operation-link", title: id }, id.slice(-12))),
    h("td", { "data-testid": "workflow" }, operation.workflow),
    h("td", { "data-testid": "step", class: "num" }, stepText(operation)),
    h("td", { class: "progress-cell" }, progressBar(operation), h("span", { class: "muted small", "data-testid": "progress-message" }, operation.progressMessage || "")),
    h("td", { "data-testid": "requester" }, operation.requester || ""),
    h("td", { "data-testid": "labels" }, labelChips(operation.labels)),
    h("td", { class: "num" }, ageCell(operation.createTime)),
  );
}
