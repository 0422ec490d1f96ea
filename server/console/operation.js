// One operation: its header and actions, the live timeline of its events, its steps, input, result and error.

import { api, openStream } from "./api.js";
import {
  TERMINAL,
  duration,
  errorBanner,
  fill,
  formatTime,
  h,
  jsonBlock,
  labelChips,
  parseTime,
  prettyJson,
  progressBar,
  shortName,
  stateBadge,
  stepText,
  toInt,
  userSteps,
} from "./format.js";

/** Which command each state allows (server/states.py): the buttons are enabled by these. */
const ALLOWED = {
  pause: new Set(["RUNNING", "PENDING"]),
  resume: new Set(["PAUSED", "PAUSE_REQUESTED"]),
  cancel: new Set(["RUNNING", "PENDING", "PAUSED", "PAUSE_REQUESTED"]),
};
const VERBS = { pause: "Pause", resume: "Resume", cancel: "Cancel" };
const DURATION_NOTE = "time between the step's recorded boundaries, pauses left out; steps reported together count in the first";

export function renderOperation(main, id) {
  let operation = null;
  let lastSeq = -1; // the newest seq applied to the header
  let workflow = null;
  let stream = null;
  let disposed = false;
  const events = new Map(); // seq -> event
  let maxSeq = 0;

  const header = h("section", { class: "op-header", "data-testid": "operation-header" }, h("p", { class: "muted" }, "Loading…"));
  const message = h("div", { "data-testid": "operation-message" });
  const actions = h(
    "div",
    { class: "actions", role: "group", "aria-label": "Commands" },
    Object.entries(VERBS).map(([verb, label]) =>
      h("button", { type: "button", "data-testid": `action-${verb}`, "data-verb": verb, class: verb === "cancel" ? "danger" : "", disabled: true, onclick: () => ask(verb) }, label),
    ),
  );
  const errorBox = h("section", { "data-testid": "error-box", class: "error-box", hidden: true });
  const stepsList = h("ol", { class: "steps", "data-testid": "steps" });
  const values = h("section", { class: "values" });
  const timeline = h("ol", { class: "timeline", "data-testid": "timeline" });
  const liveStatus = h("span", { class: "live", "data-testid": "timeline-status", role: "status" }, "");
  const dialog = reasonDialog();

  main.replaceChildren(
    h("p", { class: "crumbs" }, h("a", { href: "#/operations" }, "← Operations")),
    header,
    actions,
    message,
    errorBox,
    h("div", { class: "columns" }, h("section", {}, h("h2", {}, "Steps"), stepsList, values), h("section", {}, h("div", { class: "title-row" }, h("h2", {}, "Timeline"), liveStatus), timeline)),
    dialog.element,
  );

  function show(next) {
    const seq = toInt(next.lastSeq);
    if (operation && seq < lastSeq) return;
    operation = next;
    lastSeq = seq;
    const state = shortName(operation.state);
    fill(
      header,
      h("div", { class: "title-row" }, h("h1", { class: "mono", "data-testid": "operation-id" }, operation.id), stateBadge(operation.state, "operation-state")),
      h(
        "dl",
        { class: "facts" },
        fact("Workflow", h("a", { href: "#/workflows", "data-testid": "operation-workflow" }, operation.workflow)),
        fact(
          "Step",
          h("span", { "data-testid": "operation-step" }, stepText(operation)),
          operation.stage && toInt(operation.stage.membersRunning) ? h("span", { class: "small", "data-testid": "stage-running" }, ` (${toInt(operation.stage.membersRunning)} running)`) : null,
          operation.currentStepName ? h("span", { class: "muted mono small" }, ` ${operation.currentStepName}`) : null,
        ),
        fact("Progress", progressBar(operation, "operation-progress"), h("span", { class: "small", "data-testid": "operation-progress-message" }, ` ${operation.progressMessage || ""}`)),
        fact("Attempt", String(operation.attempt || 1)),
        fact("Requester", operation.requester || "–"),
        fact("Labels", labelChips(operation.labels)),
        fact("Created", formatTime(operation.createTime)),
        fact("Updated", formatTime(operation.updateTime)),
        operation.endTime && parseTime(operation.endTime) ? fact("Ended", formatTime(operation.endTime)) : null,
      ),
    );
    for (const button of actions.querySelectorAll("button")) button.disabled = !ALLOWED[button.dataset.verb].has(state);
    showError();
    showSteps();
    showValues();
  }

  function showError() {
    const error = operation.error;
    if (!error || (!error.code && !error.message)) {
      errorBox.hidden = true;
      errorBox.replaceChildren();
      return;
    }
    const number = toInt(error.stepNumber);
    // memberIndex: set (0 included) only when a member of a stage failed.
    const member = error.memberIndex === undefined || error.memberIndex === null ? "" : `member ${toInt(error.memberIndex) + 1} of `;
    const where = number ? `at ${member}step ${number}/${toInt(operation.totalSteps)}${error.stepName ? ` (${error.stepName})` : ""}` : "";
    const traceback = error.traceback || error.details;
    errorBox.hidden = false;
    fill(
      errorBox,
      h("h2", {}, "Error"),
      h("p", {}, h("strong", { "data-testid": "error-code", class: "mono" }, error.code || "error"), " ", h("span", { "data-testid": "error-step" }, where)),
      h("pre", { class: "error-message", "data-testid": "error-message" }, error.message || ""),
      traceback ? h("details", {}, h("summary", {}, "Traceback"), h("pre", { "data-testid": "error-traceback" }, typeof traceback === "string" ? traceback : prettyJson(traceback))) : null,
    );
  }

  function showSteps() {
    const names = userSteps(workflow);
    const total = toInt(operation.totalSteps) || names.length;
    const current = toInt(operation.stepNumber);
    const state = shortName(operation.state);
    const durations = stepDurations([...events.values()].sort((a, b) => toInt(a.seq) - toInt(b.seq)), total);
    const items = [];
    for (let index = 0; index < Math.max(total, names.length); index++) {
      const number = index + 1;
      let status = "pending";
      if (state === "SUCCEEDED" || number < current) status = "done";
      else if (number === current) status = { FAILED: "failed", PAUSED: "paused", CANCELLED: "cancelled" }[state] || (TERMINAL.has(state) ? "pending" : "current");
      items.push(
        h(
          "li",
          { class: `step step-${status}`, "data-testid": "step-item", "data-status": status },
          h("span", { class: "mono" }, names[index] || `step ${number}`),
          h("span", { class: "muted small" }, ` ${status}`),
          status === "current" && operation.stage ? h("span", { class: "small", "data-testid": "step-stage" }, ` · ${toInt(operation.stage.membersDone)}/${toInt(operation.stage.membersTotal)} done`) : null,
          durations[number] ? h("span", { class: "small", "data-testid": "step-duration", title: DURATION_NOTE }, ` · ${duration(durations[number])}`) : null,
        ),
      );
    }
    stepsList.replaceChildren(...items);
  }

  let shownValues = "";
  function showValues() {
    const key = JSON.stringify([operation.input, operation.result]);
    if (key === shownValues) return; // keep the <details> open or closed as the user left them
    shownValues = key;
    values.replaceChildren(jsonBlock("Input", operation.input, "input"), jsonBlock("Result", operation.result, "result"));
  }

  function addEvent(event) {
    const seq = toInt(event.seq);
    if (events.has(seq)) return;
    events.set(seq, event);
    const type = shortName(event.type);
    const item = h(
      "li",
      { class: `event event-${type.toLowerCase()}`, "data-testid": "event", "data-seq": String(seq), "data-type": type },
      h("span", { class: "seq mono" }, `#${seq}`),
      h("span", { class: "type", "data-testid": "event-type" }, type),
      h("time", { datetime: event.time || "", class: "muted small", title: formatTime(event.time) }, clockTime(event.time)),
      h("span", { class: "message", "data-testid": "event-message" }, event.message || ""),
      event.actor ? h("span", { class: "actor small", "data-testid": "event-actor" }, `by ${event.actor}`) : null,
      event.reason ? h("span", { class: "reason small", "data-testid": "event-reason" }, `reason: ${event.reason}`) : null,
    );
    // In seq order, whatever order they came in.
    const atBottom = timeline.scrollTop + timeline.clientHeight >= timeline.scrollHeight - 24;
    const later = seq > maxSeq ? null : [...timeline.children].find((child) => toInt(child.dataset.seq) > seq);
    maxSeq = Math.max(maxSeq, seq);
    timeline.insertBefore(item, later || null);
    if (atBottom && !later) timeline.scrollTop = timeline.scrollHeight;
    if (event.operation) show(event.operation);
    else if (operation) showSteps();
  }

  async function ask(verb) {
    const reason = await dialog.ask(`${VERBS[verb]} operation`, verb);
    if (reason === null) return;
    message.replaceChildren();
    try {
      const reply = await api.command(id, verb, reason);
      if (reply.operation) show(reply.operation);
    } catch (error) {
      message.replaceChildren(errorBanner(error.message, "action-error"));
    }
  }

  (async () => {
    try {
      const reply = await api.getOperation(id);
      if (disposed) return;
      show(reply.operation);
    } catch (error) {
      header.replaceChildren(errorBanner(error.message, "operation-error"));
      return;
    }
    api
      .listWorkflows()
      .then((reply) => {
        workflow = (reply.workflows || []).find((candidate) => candidate.name === operation.workflow) || null;
        if (!disposed && operation) showSteps();
      })
      .catch(() => {});
    stream = openStream(`/v1/operations/${encodeURIComponent(id)}/events?afterSeq=0`, {
      onMessage: ({ data }) => addEvent(data),
      onStatus: (name, detail) => {
        liveStatus.dataset.status = name;
        liveStatus.textContent = { connecting: "connecting…", live: "● live", reconnecting: "reconnecting…", ended: "ended", failed: `stopped: ${detail || ""}` }[name] ?? name;
      },
    });
  })();

  return () => {
    disposed = true;
    if (stream) stream.close();
    dialog.element.remove();
  };
}

function clockTime(value) {
  const time = parseTime(value);
  return time ? time.toLocaleTimeString() : "";
}

function fact(term, ...definition) {
  return h("div", {}, h("dt", {}, term), h("dd", {}, definition));
}

/**
 * Wall time of each user step (1-based number -> ms), from the event times: a step starts at STARTED, RESUMED, RETRIED or the
 * previous STEP_COMPLETED, and ends at its STEP_COMPLETED (the last one at SUCCEEDED). A pause between steps is not counted.
 * A stage is one step: it ends at its STAGE_COMPLETED (its STAGE_STARTED and MEMBER_COMPLETED events change nothing here).
 */
export function stepDurations(events, total) {
  const result = {};
  let start = null;
  for (const event of events) {
    const type = shortName(event.type);
    const time = parseTime(event.time);
    if (!time) continue;
    if (type === "STARTED" || type === "RESUMED" || type === "STEP_RETRIED" || type === "RETRIED") {
      start = time;
    } else if (type === "STEP_COMPLETED" || type === "STAGE_COMPLETED") {
      const match = /(?:step|stage) (\d+)\/\d+ done/.exec(event.message || "");
      const number = match ? Number(match[1]) : toInt(event.operation && event.operation.stepNumber) - 1;
      if (start && number >= 1) result[number] = time - start;
      start = time;
    } else if (type === "SUCCEEDED") {
      if (start && total && result[total] === undefined) result[total] = time - start;
      start = null;
    } else if (type === "PAUSED" || TERMINAL.has(type)) {
      // "paused after step 2/5", "cancelled after step 2/5"; a FAILED event ends the failed step.
      const match = /after step (\d+)\/\d+/.exec(event.message || "");
      const number = match ? Number(match[1]) : type === "FAILED" ? toInt(event.operation && event.operation.error && event.operation.error.stepNumber) : 0;
      if (start && number >= 1 && result[number] === undefined) result[number] = time - start;
      start = null;
    }
  }
  return result;
}

/** A <dialog> asking for the reason of a command; ask() resolves to the reason, or null when dismissed. */
function reasonDialog() {
  const reason = h("textarea", { id: "reason", name: "reason", rows: "3", "data-testid": "reason-input", placeholder: "optional; recorded on the event" });
  const title = h("h2", { id: "reason-title" }, "");
  const confirm = h("button", { type: "submit", value: "confirm", "data-testid": "reason-confirm" }, "Confirm");
  const form = h(
    "form",
    { method: "dialog" },
    title,
    h("label", { for: "reason" }, "Reason"),
    reason,
    h("div", { class: "form-actions" }, h("button", { type: "submit", value: "dismiss", "data-testid": "reason-dismiss", formnovalidate: true }, "Back"), confirm),
  );
  const element = h("dialog", { "data-testid": "reason-dialog", "aria-labelledby": "reason-title" }, form);
  return {
    element,
    ask(text, verb) {
      title.textContent = text;
      confirm.textContent = `${text.split(" ")[0]}`;
      confirm.className = verb === "cancel" ? "danger" : "";
      reason.value = "";
      element.returnValue = "";
      element.showModal();
      reason.focus();
      return new Promise((resolve) => {
        element.addEventListener("close", () => resolve(element.returnValue === "confirm" ? reason.value.trim() : null), { once: true });
      });
    },
  };
}
