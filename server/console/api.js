// The daemon's HTTP/JSON gateway: plain calls (fetch) and Server-Sent Event streams (fetch + a stream reader, so the
// Authorization header can be sent, which EventSource cannot), with reconnection that sends Last-Event-ID.

const TOKEN_KEY = "pausable.token";

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * A number whose JSON text JavaScript's Number would change: an integer beyond 2^53, 1.0 (a float in the stored
 * JSON), 1e3. Kept as its text so inputs and results show as stored; arithmetic still works (valueOf).
 */
export class RawNumber {
  constructor(source) {
    this.source = source;
  }

  valueOf() {
    return Number(this.source);
  }

  toString() {
    return this.source;
  }

  toJSON() {
    return Number(this.source);
  }
}

function keepNumbers(key, value, context) {
  if (typeof value === "number" && context && typeof context.source === "string" && context.source !== String(value)) {
    return new RawNumber(context.source);
  }
  return value;
}

/** JSON.parse keeping numbers' text where it matters (browsers with JSON.parse source text access; else plain). */
export function parseJson(text) {
  return JSON.parse(text, keepNumbers);
}

/** An error the gateway answered with ({"error": {"code", "status", "message"}}), or a failure to reach it. */
export class ApiError extends Error {
  constructor(httpStatus, status, message) {
    super(message);
    this.httpStatus = httpStatus;
    this.status = status;
  }
}

function headers(extra = {}) {
  const result = { Accept: "application/json", ...extra };
  const token = getToken();
  if (token) result.Authorization = `Bearer ${token}`;
  return result;
}

async function errorOf(response) {
  const text = await response.text();
  try {
    const error = JSON.parse(text).error;
    if (error && error.message !== undefined) return new ApiError(response.status, error.status || "", error.message);
  } catch {
    // not JSON: the text itself
  }
  return new ApiError(response.status, "", text.trim() || `${response.status} ${response.statusText}`);
}

export async function request(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "UNAVAILABLE", `cannot reach the daemon: ${error.message}`);
  }
  if (!response.ok) throw await errorOf(response);
  return parseJson(await response.text());
}

/** A query string of the filters ListOperations and WatchEvents share (and the list-only ones when given). */
export function query(params) {
  const search = new URLSearchParams();
  for (const state of params.states || []) search.append("states", state);
  for (const [key, value] of Object.entries(params.labels || {})) search.append(`labels[${key}]`, value);
  for (const name of ["workflow", "requester", "createdAfter", "createdBefore", "pageSize", "pageToken", "view", "afterSeq", "afterCursor"]) {
    if (params[name] !== undefined && params[name] !== "") search.set(name, String(params[name]));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export const api = {
  listOperations: (params) => request("GET", `/v1/operations${query(params)}`),
  getOperation: (id) => request("GET", `/v1/operations/${encodeURIComponent(id)}`),
  startOperation: (body) => request("POST", "/v1/operations", body),
  /** verb: "pause", "resume" or "cancel". */
  command: (id, verb, reason) =>
    request("POST", `/v1/operations/${encodeURIComponent(id)}:${verb}`, reason ? { reason, requestId: newRequestId() } : { requestId: newRequestId() }),
  listWorkflows: () => request("GET", "/v1/workflows"),
};

export function newRequestId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `console-${Date.now().toString(16)}-${Math.random().toString(16).slice(2)}`;
}

/** Codes a stream is not retried after: the request itself is wrong (bad filter, unknown operation, no permission). */
const FINAL_HTTP = new Set([400, 401, 403, 404]);
const FINAL_STATUS = new Set(["INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE", "NOT_FOUND", "UNAUTHENTICATED", "PERMISSION_DENIED"]);

/**
 * Follows an SSE stream at `path`, reconnecting with backoff after a lost connection and sending Last-Event-ID (the id
 * of the last message received), until `close()` or a final `event: end`.
 *
 * handlers: onMessage({id, event, data}) for each data message (data parsed as JSON), onEnd(), onError(ApiError) for a
 * refusal that is not retried, onStatus("connecting" | "live" | "reconnecting" | "ended" | "failed", detail).
 */
export function openStream(path, handlers, { lastEventId = "", minDelay = 200, maxDelay = 5000 } = {}) {
  const controller = new AbortController();
  let closed = false;
  let lastId = lastEventId;
  let delay = minDelay;
  const status = (name, detail) => handlers.onStatus && handlers.onStatus(name, detail);

  async function connectOnce() {
    const extra = { Accept: "text/event-stream" };
    if (lastId) extra["Last-Event-ID"] = lastId;
    const response = await fetch(path, { headers: headers(extra), signal: controller.signal, cache: "no-store" });
    if (!response.ok) {
      const error = await errorOf(response);
      if (FINAL_HTTP.has(response.status)) return { final: error };
      throw error;
    }
    status("live");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = "";
    let data = [];
    let id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { final: null, ended: false };
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (id !== null) lastId = id;
          const name = event || "message";
          const text = data.join("\n");
          event = "";
          data = [];
          id = null;
          if (name === "end") return { final: null, ended: true };
          if (!text) continue;
          let parsed;
          try {
            parsed = parseJson(text);
          } catch {
            parsed = text;
          }
          if (name === "error") {
            // The stream failed after it began: final when the request itself is refused, else reconnect.
            const error = parsed && parsed.error ? parsed.error : { message: String(parsed) };
            const failure = new ApiError(error.code || 0, error.status || "", error.message);
            if (FINAL_HTTP.has(failure.httpStatus) || FINAL_STATUS.has(failure.status)) return { final: failure };
            throw failure;
          }
          delay = minDelay; // a message came through: the connection is good
          handlers.onMessage({ id: lastId, event: name, data: parsed });
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "data") data.push(value);
          else if (field === "event") event = value;
          else if (field === "id" && !value.includes("\0")) id = value;
        }
      }
    }
  }

  (async () => {
    status("connecting");
    while (!closed) {
      try {
        const outcome = await connectOnce();
        if (outcome.ended) {
          closed = true;
          status("ended");
          if (handlers.onEnd) handlers.onEnd();
          return;
        }
        if (outcome.final) {
          closed = true;
          status("failed", outcome.final.message);
          if (handlers.onError) handlers.onError(outcome.final);
          return;
        }
      } catch (error) {
        if (closed) return;
        status("reconnecting", error.message);
      }
      if (closed) return;
      status("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(maxDelay, delay * 2);
    }
  })();

  return {
    close() {
      closed = true;
      controller.abort();
    },
    get lastEventId() {
      return lastId;
    },
  };
}
