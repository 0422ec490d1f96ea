// The workflows page: each registered workflow with its steps and input schema, and a form to start a run.

import { api, newRequestId } from "./api.js";
import { errorBanner, formatTime, h, parseLabels, prettyJson, userSteps } from "./format.js";

export function renderWorkflows(main) {
  const list = h("div", { class: "workflows", "data-testid": "workflows" }, h("p", { class: "muted" }, "Loading…"));
  main.replaceChildren(h("h1", {}, "Workflows"), list);
  api
    .listWorkflows()
    .then((reply) => {
      const workflows = reply.workflows || [];
      list.replaceChildren(...(workflows.length ? workflows.map(workflowCard) : [h("p", { "data-testid": "no-workflows" }, "No workflow is registered yet: start a worker.")]));
    })
    .catch((error) => list.replaceChildren(errorBanner(error.message)));
  return () => {};
}

function workflowCard(workflow) {
  const slug = workflow.name.replace(/[^A-Za-z0-9_-]/g, "-");
  const steps = userSteps(workflow);
  const schema = workflow.inputSchema;
  return h(
    "section",
    { class: "card", "data-testid": "workflow", "data-name": workflow.name, "aria-labelledby": `wf-${slug}` },
    h("h2", { id: `wf-${slug}`, class: "mono" }, workflow.name),
    workflow.description ? h("p", {}, workflow.description) : null,
    h("p", { class: "muted small" }, `${steps.length} step${steps.length === 1 ? "" : "s"} · registered ${formatTime(workflow.registerTime)} · at most ${workflow.maxAttempts || 3} attempts per step`),
    h("ol", { class: "steps", "data-testid": "workflow-steps" }, steps.map((name) => h("li", { class: "mono" }, name))),
    h(
      "details",
      { "data-testid": "workflow-schema" },
      h("summary", {}, "Input schema"),
      h("pre", { class: "json" }, schema === null || schema === undefined ? "any JSON value" : prettyJson(schema)),
    ),
    startForm(workflow, slug),
  );
}

function startForm(workflow, slug) {
  const input = h("textarea", { id: `input-${slug}`, name: "input", rows: "5", class: "mono", "data-testid": "start-input", spellcheck: "false" }, "{}");
  const labels = h("input", { id: `labels-${slug}`, name: "labels", type: "text", placeholder: "team=data", "data-testid": "start-labels" });
  const requester = h("input", { id: `requester-${slug}`, name: "requester", type: "text", "data-testid": "start-requester" });
  const message = h("div", { "data-testid": "start-message", "aria-live": "polite" });
  const submit = h("button", { type: "submit", "data-testid": "start-submit" }, "Start");
  const form = h(
    "form",
    { class: "start", "data-testid": "start-form" },
    h("h3", {}, "Start a run"),
    h("label", { for: `input-${slug}` }, "Input (JSON)"),
    input,
    h("div", { class: "row" }, h("div", { class: "field" }, h("label", { for: `labels-${slug}` }, "Labels (key=value, …)"), labels), h("div", { class: "field" }, h("label", { for: `requester-${slug}` }, "Requester"), requester)),
    message,
    h("div", { class: "form-actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.replaceChildren();
    const text = input.value.trim();
    let value;
    try {
      value = text ? JSON.parse(text) : null;
    } catch (error) {
      message.replaceChildren(errorBanner(`The input is not JSON: ${error.message}`, "start-error"));
      input.focus();
      return;
    }
    let labelMap;
    try {
      labelMap = parseLabels(labels.value);
    } catch (error) {
      message.replaceChildren(errorBanner(error.message, "start-error"));
      return;
    }
    submit.disabled = true;
    try {
      // The schema is checked by the daemon: its message is shown as it is.
      const body = { workflow: workflow.name, input: value, requestId: newRequestId(), labels: labelMap };
      if (requester.value.trim()) body.requester = requester.value.trim();
      const reply = await api.startOperation(body);
      location.hash = `#/operations/${encodeURIComponent(reply.operation.id)}`;
    } catch (error) {
      message.replaceChildren(errorBanner(error.message, "start-error"));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
