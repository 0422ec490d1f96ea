// Small DOM and formatting helpers shared by the views.

import { RawNumber } from "./api.js";

/** h("a", {href: "#/x", class: "y"}, "text", child...): an element; attributes starting with "on" are listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

/** element.replaceChildren(...children), skipping null, undefined and false (the DOM method would print "null"). */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
export const STATES = ["PENDING", "RUNNING", "PAUSE_REQUESTED", "PAUSED", "CANCEL_REQUESTED", "SUCCEEDED", "FAILED", "CANCELLED"];

/** "OPERATION_STATE_PAUSE_REQUESTED" -> "PAUSE_REQUESTED" (also for EVENT_TYPE_...). */
export function shortName(value) {
  return String(value || "").replace(/^(OPERATION_STATE_|EVENT_TYPE_)/, "");
}

export function stateBadge(state, testid = "state") {
  const name = shortName(state);
  return h("span", { class: `badge state-${name.toLowerCase()}`, "data-testid": testid, "data-state": name }, name || "?");
}

/** int64 fields come as strings in proto3 JSON. */
export function toInt(value) {
  const number = Number(value || 0);
  return Number.isFinite(number) ? number : 0;
}

export function stepText(operation) {
  const total = toInt(operation.totalSteps);
  if (!total) return "–";
  const step = `${toInt(operation.stepNumber)}/${total}`;
  const stage = operation.stage;
  return stage ? `stage ${step} · ${toInt(stage.membersDone)}/${toInt(stage.membersTotal)} done` : step;
}

/** How far the current step is, 0 to 1: a stage's members done of its members, else the step's reported progress. */
export function stepFraction(operation) {
  const stage = operation.stage;
  const fraction = stage ? toInt(stage.membersDone) / (toInt(stage.membersTotal) || 1) : Number(operation.progress) || 0;
  return Math.max(0, Math.min(1, fraction));
}

export function progressBar(operation, testid = "progress") {
  // A finished run's progress is that of no step: full when it succeeded.
  const done = shortName(operation.state) === "SUCCEEDED";
  const fraction = done ? 1 : stepFraction(operation);
  const label = `${Math.round(fraction * 100)}%`;
  const what = operation.stage && !done ? "stage" : "step";
  return h("progress", { max: "1", value: String(fraction), "data-testid": testid, title: operation.progressMessage || label, "aria-label": `${what} progress ${label}` });
}

export function parseTime(value) {
  if (!value) return null;
  const time = new Date(value);
  return Number.isNaN(time.getTime()) || time.getUTCFullYear() <= 1970 ? null : time;
}

export function formatTime(value) {
  const time = parseTime(value);
  return time ? time.toLocaleString() : "";
}

export function age(value, now = Date.now()) {
  const time = parseTime(value);
  if (!time) return "";
  const ms = now - time.getTime();
  return ms < 1000 ? "just now" : duration(ms);
}

export function duration(ms) {
  if (ms < 0 || !Number.isFinite(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d`;
}

/** A time element whose text is the age, refreshed by refreshAges(). */
export function ageCell(value) {
  return h("time", { datetime: value || "", "data-age": value || "", title: formatTime(value) }, age(value));
}

export function refreshAges(root = document) {
  const now = Date.now();
  for (const element of root.querySelectorAll("[data-age]")) element.textContent = age(element.dataset.age, now);
}

export function labelsText(labels) {
  return Object.entries(labels || {})
    .map(([key, value]) => `${key}=${value}`)
    .join(", ");
}

export function labelChips(labels) {
  return Object.entries(labels || {}).map(([key, value]) => h("span", { class: "chip" }, `${key}=${value}`));
}

/** "a=1, b=2" -> {a: "1", b: "2"}; throws on an entry without "=". */
export function parseLabels(text) {
  const labels = {};
  for (const part of String(text || "").split(",")) {
    const entry = part.trim();
    if (!entry) continue;
    const equals = entry.indexOf("=");
    if (equals <= 0) throw new Error(`label "${entry}" is not key=value`);
    labels[entry.slice(0, equals).trim()] = entry.slice(equals + 1).trim();
  }
  return labels;
}

/** JSON.stringify(value, null, 2), printing RawNumbers as their stored text. */
export function prettyJson(value, indent = "") {
  if (value instanceof RawNumber) return value.source;
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((item) => inner + prettyJson(item, inner)).join(",\n")}\n${indent}]`;
  }
  const keys = Object.keys(value);
  if (!keys.length) return "{}";
  return `{\n${keys.map((key) => `${inner}${JSON.stringify(key)}: ${prettyJson(value[key], inner)}`).join(",\n")}\n${indent}}`;
}

const SHOWN_CHARS = 2000;

/** A collapsible JSON value: pretty-printed, cut at SHOWN_CHARS with a "show all" button. */
export function jsonBlock(title, value, testid, { open = false } = {}) {
  const text = value === undefined ? "(none)" : prettyJson(value);
  const pre = h("pre", { class: "json", "data-testid": `${testid}-json` });
  const details = h("details", { "data-testid": testid, open }, h("summary", {}, title, h("span", { class: "muted" }, ` ${sizeText(text)}`)), pre);
  if (text.length <= SHOWN_CHARS) {
    pre.textContent = text;
  } else {
    pre.textContent = `${text.slice(0, SHOWN_CHARS)}\n…`;
    const button = h("button", { type: "button", "data-testid": `${testid}-show-all` }, `Show all (${sizeText(text)})`);
    button.addEventListener("click", () => {
      pre.textContent = text;
      button.remove();
    });
    details.append(button);
  }
  return details;
}

function sizeText(text) {
  const bytes = new Blob([text]).size;
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`;
}

export function errorBanner(message, testid = "error") {
  return h("p", { class: "error", role: "alert", "data-testid": testid }, message);
}

/** The user's steps of a workflow: plan entries without "inserted": true (the task names when the plan is unreadable). */
export function userSteps(workflow) {
  if (!workflow) return [];
  try {
    const plan = JSON.parse(workflow.planJson || "[]");
    if (Array.isArray(plan) && plan.length) {
      const steps = plan.filter((entry) => !(entry && entry.inserted === true)).map((entry) => String(entry.task || entry.name || "?"));
      if (steps.length) return steps;
    }
  } catch {
    // fall back to the names
  }
  return [...(workflow.steps || [])];
}
