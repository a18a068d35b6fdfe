// The /ui playground. Plain JavaScript, no build step, no other host: every call below is a
// public route of this service, made the way a client in any language would make it.
"use strict";

const state = {
  token: "", // in memory only: never localStorage, cookies or the URL
  config: { auth: false, max_body_bytes: 0, jobs_max_upload_bytes: 0 },
  styles: null, // the /styles answer
  summarizeFile: null, // a chosen file, read when the form is sent
  watching: null, // the job id being followed
  jobStatus: null, // its last known status
  pollTimer: null,
};
const TERMINAL = new Set(["completed", "cancelled", "failed"]);
const POLL_MS = 1000;
const PLACEHOLDER = /<([A-Z][A-Z0-9_]*)>/g; // what redaction puts in the text: <EMAIL_ADDRESS>

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- API calls and their errors

class ApiError extends Error {
  constructor(status, type, message, retryAfter) {
    super(message);
    this.status = status;
    this.type = type;
    this.retryAfter = retryAfter;
  }
}

function authHeaders() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

// One call to the service; resolves to the Response, or throws ApiError in the API's own words.
async function call(path, { method = "POST", json, body, headers = {} } = {}) {
  const init = { method, headers: { ...authHeaders(), ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "NetworkError", `the service could not be reached (${err.message})`, null);
  }
  if (response.ok) return response;
  let type = "Error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const data = await response.json();
    if (data && data.error && typeof data.error === "object") {
      type = data.error.type || type;
      message = data.error.message || message;
    }
  } catch (_) {
    // not our JSON error shape (a proxy's page, say): the status line is all there is
  }
  throw new ApiError(response.status, type, message, response.headers.get("Retry-After"));
}

async function callJson(path, options) {
  return (await call(path, options)).json();
}

// What an error means for the person in front of the page, beside the API's own message.
function advice(err) {
  const wait = err.retryAfter ? ` Retry after ${err.retryAfter} s.` : "";
  switch (err.status) {
    case 0: return "Check that the service is running and reachable from this browser.";
    case 401: return state.token
      ? "The token was not accepted. Check it in the Access token field above."
      : "This deployment requires a token. Enter one in the Access token field above.";
    case 403: return "The token is valid but not allowed to do this: it lacks the scope named above. Ask for a token with that scope.";
    case 413: return "The input is larger than this deployment accepts. Send a smaller document, or use a job for large inputs.";
    case 415: return "The service could not read the body in this form.";
    case 429: return `The service is busy or you are sending too fast.${wait}`;
    case 503: return `The service is not ready or a dependency is down.${wait}`;
    case 504: return "The model did not answer in time. Try a shorter document.";
    case 507: return "The service's storage is full or read-only. Tell its operators.";
    default: return err.status >= 500 ? "The service failed on this request. Its logs have the details." : "";
  }
}

function showError(box, err) {
  box.replaceChildren();
  const title = document.createElement("p");
  const strong = document.createElement("strong");
  strong.textContent = err.status ? `Error ${err.status} (${err.type})` : "Error";
  title.append(strong);
  const message = document.createElement("p");
  message.className = "api-message";
  message.textContent = err.message;
  box.append(title, message);
  const hint = advice(err);
  if (hint) {
    const p = document.createElement("p");
    p.textContent = hint;
    box.append(p);
  }
  box.hidden = false;
}

function clearError(box) {
  box.hidden = true;
  box.replaceChildren();
}

// Runs one user action: busy button, status line, errors shown and never swallowed.
async function act(button, statusEl, errorEl, busyText, work) {
  clearError(errorEl);
  button.disabled = true;
  statusEl.textContent = busyText;
  try {
    statusEl.textContent = (await work()) || "";
  } catch (err) {
    statusEl.textContent = "";
    showError(errorEl, err instanceof ApiError ? err : new ApiError(-1, "PageError", String(err), null));
  } finally {
    button.disabled = false;
    syncControls();
    // A count of finished actions, for scripts driving the page (the browser tests wait on it).
    document.body.dataset.actions = String(Number(document.body.dataset.actions || 0) + 1);
  }
}

// ---------------------------------------------------------------- small DOM helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function facts(pairs) {
  const dl = el("dl", { class: "facts" });
  for (const [term, value] of pairs) dl.append(el("dt", {}, term), el("dd", {}, value));
  return dl;
}

function counts(map, none) {
  const entries = Object.entries(map || {});
  if (!entries.length) return el("p", { class: "help" }, none);
  return el("ul", { class: "counts" }, ...entries.map(([k, v]) => el("li", {}, `${k}: ${v}`)));
}

// The summary as text nodes, with every redaction placeholder marked (a dashed box, a monospace
// face and the words "redacted" for screen readers: not colour alone). Text only: nothing from the service is ever parsed as HTML.
function markedSummary(text) {
  const p = el("p", { class: "summary" });
  let last = 0;
  for (const match of text.matchAll(PLACEHOLDER)) {
    p.append(text.slice(last, match.index));
    const label = match[1].toLowerCase().replaceAll("_", " ");
    p.append(el("mark", { class: "pii", title: `redacted ${label}`, "data-entity": match[1] },
      el("span", { class: "sr-only" }, "redacted: "), match[0]));
    last = match.index + match[0].length;
  }
  p.append(text.slice(last));
  return p;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// The parts of a /summarize or /rag answer a person wants to see, in one block.
function renderSummary(container, r) {
  const share = r.input_words ? Math.round((100 * r.summary_words) / r.input_words) : 0;
  const redacted = Object.values(r.redactions || {}).reduce((a, b) => a + b, 0);
  container.replaceChildren(
    markedSummary(r.summary),
    facts([
      ["Length", `${plural(r.summary_words, "word")} from ${plural(r.input_words, "word")} (${share}% of the input; ${r.input_chars} characters sent)`],
      ["Style", r.style],
      ["Engine", `${r.engine}, ${plural(r.chunks, "chunk")}`],
      ["Model", el("code", {}, r.model)],
      ["Timing", `prepare ${r.timing.prepare_ms} ms, model ${r.timing.model_ms} ms, total ${r.timing.total_ms} ms`],
      ["Normalized", `read as ${r.normalization.format}; ${r.normalization.chars} characters reached the model`],
    ]),
    el("h3", {}, "What normalization dropped"),
    counts(r.normalization.removed, "Nothing was dropped."),
    el("h3", {}, `Personal data redacted (${redacted})`),
    counts(r.redactions, "Nothing was redacted."),
  );
  return `Summary ready: ${plural(r.summary_words, "word")}, ${plural(redacted, "redaction")}.`;
}

// ---------------------------------------------------------------- tabs (WAI-ARIA tab pattern)

function setUpTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab, focus) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
    if (tab.id === "tab-rag") refreshDocuments();
    if (tab.id === "tab-jobs") refreshJobs();
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab, false));
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      select(tabs[(moves[event.key] + tabs.length) % tabs.length], true);
    });
  });
}

// ---------------------------------------------------------------- styles

async function loadStyles() {
  try {
    state.styles = await callJson("/styles", { json: {} });
  } catch (err) {
    // Not shown as an error before a token was given: the auth card already says what to do.
    if (!(err.status === 401 && !state.token)) showError($("sum-error"), err);
    return;
  }
  for (const select of document.querySelectorAll(".style-select")) {
    const chosen = select.value;
    const options = Object.keys(state.styles.styles).map((name) =>
      el("option", { value: name, selected: name === (chosen || state.styles.default) },
        name === state.styles.default ? `${name} (default)` : name));
    select.replaceChildren(...options);
    describeStyle(select);
  }
}

function describeStyle(select) {
  const desc = $(select.getAttribute("aria-describedby"));
  desc.textContent = state.styles ? state.styles.styles[select.value] || "" : "";
}

// ---------------------------------------------------------------- summarize

function formatFor(file, chosen) {
  if (chosen !== "auto") return chosen;
  return /\.html?$/i.test(file.name) ? "html" : /\.(md|txt)$/i.test(file.name) ? "text" : "auto";
}

function chooseSummarizeFile(file) {
  state.summarizeFile = file || null;
  $("sum-file-info").textContent = file ? `File chosen: ${file.name} (${file.size} bytes). It is sent instead of the text box.` : "";
  $("sum-file-clear").hidden = !file;
  if (!file) $("sum-file").value = "";
}

function setUpSummarize() {
  const drop = $("sum-drop");
  $("sum-file").addEventListener("change", (e) => chooseSummarizeFile(e.target.files[0]));
  $("sum-file-clear").addEventListener("click", () => { chooseSummarizeFile(null); $("sum-text").focus(); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) chooseSummarizeFile(e.dataTransfer.files[0]);
  });
  $("summarize-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act($("sum-submit"), $("sum-status"), $("sum-error"), "Summarizing…", async () => {
      const file = state.summarizeFile;
      const text = file ? await file.text() : $("sum-text").value;
      const format = file ? formatFor(file, $("sum-format").value) : $("sum-format").value;
      const result = await callJson("/summarize", { json: { text, format, style: $("sum-style").value || null } });
      const article = $("sum-result");
      const said = renderSummary(article.querySelector(".summary-body"), result);
      article.hidden = false;
      return said;
    });
  });
}

// ---------------------------------------------------------------- RAG

function setUpRag() {
  $("rag-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act($("rag-submit"), $("rag-status"), $("rag-error"), "Retrieving and summarizing…", async () => {
      const topK = Number.parseInt($("rag-top-k").value, 10);
      const body = { text: $("rag-text").value, style: $("rag-style").value || null };
      if (Number.isFinite(topK)) body.top_k = topK;
      const result = await callJson("/rag", { json: body });
      const article = $("rag-result");
      const said = renderSummary(article.querySelector(".summary-body"), result);
      const list = $("rag-citations");
      list.replaceChildren(...result.citations.map((c) => el("li", { class: "citation" },
        el("strong", {}, c.document_id), ` (passage ${c.chunk + 1}, score ${c.score.toFixed(3)})`,
        el("blockquote", {}, c.snippet))));
      if (result.index_empty) list.replaceChildren(el("li", {}, "The index is empty, so this is a plain summary. Index files below."));
      article.hidden = false;
      return `${said} ${plural(result.citations.length, "source")} cited.`;
    });
  });
  $("index-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act($("index-submit"), $("index-status"), $("index-error"), "Indexing…", async () => {
      const files = [...$("index-files").files];
      if (!files.length) throw new ApiError(-1, "NoFiles", "choose one or more files to index first", null);
      const documents = await Promise.all(files.map(async (f) => ({ id: f.name, text: await f.text() })));
      const report = await callJson("/rag/index", { json: { documents } });
      $("index-files").value = "";
      await refreshDocuments();
      return `Indexed ${report.indexed.length}, unchanged ${report.unchanged.length}; ` +
        `${plural(report.chunks_embedded, "passage")} embedded. The index holds ${plural(report.documents, "document")}.`;
    });
  });
  $("docs-refresh").addEventListener("click", () => refreshDocuments());
}

async function refreshDocuments() {
  let listing;
  try {
    listing = await callJson("/rag/documents", { json: {} });
  } catch (err) {
    if (!(err.status === 401 && !state.token)) showError($("index-error"), err);
    return;
  }
  const rows = listing.documents.map((d) => {
    const remove = el("button", { type: "button", class: "danger", "aria-label": `Delete ${d.id}` }, "Delete");
    remove.addEventListener("click", () =>
      act(remove, $("index-status"), $("index-error"), `Deleting ${d.id}…`, async () => {
        await callJson("/rag/delete", { json: { ids: [d.id] } });
        await refreshDocuments();
        return `Deleted ${d.id}.`;
      }));
    return el("tr", { "data-id": d.id }, el("td", {}, d.id), el("td", {}, String(d.chunks)), el("td", {}, d.indexed_at), el("td", {}, remove));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 4 }, "No documents indexed yet.")));
  $("docs-table").tBodies[0].replaceChildren(...rows);
}

// ---------------------------------------------------------------- jobs

function setUpJobs() {
  $("job-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act($("job-submit"), $("job-status-line"), $("job-error"), "Uploading…", async () => {
      const file = $("job-file").files[0];
      if (!file) throw new ApiError(-1, "NoFile", "choose a JSONL file first", null);
      const style = $("job-style").value;
      const path = style ? `/jobs?style=${encodeURIComponent(style)}` : "/jobs";
      const job = await callJson(path, { body: file, headers: { "Content-Type": "application/x-ndjson" } });
      watch(job.id);
      refreshJobs();
      return `Job ${job.id} submitted: ${plural(job.total, "document")}.`;
    });
  });
  $("job-cancel").addEventListener("click", () =>
    act($("job-cancel"), $("job-status-line"), $("job-error"), "Cancelling…", async () => {
      const job = await callJson(`/jobs/${state.watching}/cancel`);
      showJob(job);
      refreshJobs();
      return `Job ${job.id} is ${job.status}.`;
    }));
  $("job-download").addEventListener("click", () =>
    act($("job-download"), $("job-status-line"), $("job-error"), "Downloading…", async () => {
      const id = state.watching;
      const blob = await (await call(`/jobs/${id}/results`, { method: "GET" })).blob();
      const link = el("a", { href: URL.createObjectURL(blob), download: `job-${id}-results.jsonl` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
      return `Results of job ${id} downloaded.`;
    }));
  $("jobs-refresh").addEventListener("click", () => refreshJobs());
}

function showJob(job) {
  const article = $("job-watch");
  article.hidden = false;
  article.dataset.status = job.status;
  $("job-id").textContent = job.id;
  const state_ = $("job-state");
  state_.textContent = job.status;
  state_.className = `state-${job.status}`;
  const progress = $("job-progress");
  progress.max = Math.max(job.total, 1);
  progress.value = job.done + job.failed;
  progress.setAttribute("aria-valuetext", `${job.done + job.failed} of ${job.total} documents (${job.percent}%)`);
  const rate = job.rate_docs_per_s ? `, ${job.rate_docs_per_s} documents/s` : "";
  const eta = job.eta_s !== null && job.eta_s !== undefined ? `, about ${Math.ceil(job.eta_s)} s left` : "";
  $("job-counts").textContent = `${job.done} done, ${job.failed} failed of ${job.total} (${job.percent}%)${rate}${eta}`;
  $("job-invalid").textContent = job.invalid_lines ? `${plural(job.invalid_lines, "invalid line")} skipped (see /jobs/${job.id}/invalid).` : "";
  state.jobStatus = job.status;
  syncControls();
}

// Controls whose state follows data, not the last click: a finished job cannot be cancelled.
function syncControls() {
  $("job-cancel").disabled = TERMINAL.has(state.jobStatus);
}

function watch(id) {
  state.watching = id;
  clearTimeout(state.pollTimer);
  const poll = async () => {
    if (state.watching !== id) return;
    let job;
    try {
      job = await callJson(`/jobs/${id}`, { method: "GET" });
    } catch (err) {
      showError($("job-error"), err);
      if (err.status === 404) return; // deleted: nothing left to follow
      state.pollTimer = setTimeout(poll, POLL_MS * 3);
      return;
    }
    clearError($("job-error"));
    showJob(job);
    if (TERMINAL.has(job.status)) {
      $("job-status-line").textContent = `Job ${id} ${job.status}: ${job.done} done, ${job.failed} failed.`;
      refreshJobs();
    } else {
      state.pollTimer = setTimeout(poll, POLL_MS);
    }
  };
  poll();
}

async function refreshJobs() {
  let listing;
  try {
    listing = await callJson("/jobs", { method: "GET" });
  } catch (err) {
    if (!(err.status === 401 && !state.token)) showError($("job-error"), err);
    return;
  }
  const rows = listing.jobs.map((j) => {
    const follow = el("button", { type: "button", class: "secondary", "aria-label": `Watch job ${j.id}` }, "Watch");
    follow.addEventListener("click", () => { watch(j.id); $("job-watch").scrollIntoView(); });
    return el("tr", { "data-id": j.id }, el("td", {}, el("code", {}, j.id)),
      el("td", { class: `state-${j.status}` }, j.status), el("td", {}, String(j.total)), el("td", {}, follow));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 4 }, "No jobs yet.")));
  $("jobs-table").tBodies[0].replaceChildren(...rows);
}

// ---------------------------------------------------------------- start

async function start() {
  setUpTabs();
  setUpSummarize();
  setUpRag();
  setUpJobs();
  for (const select of document.querySelectorAll(".style-select")) {
    select.addEventListener("change", () => describeStyle(select));
  }
  $("token").addEventListener("input", (e) => { state.token = e.target.value.trim(); });
  $("token").addEventListener("change", () => loadStyles());
  // Enter in the token field: load with it, never a form submission (that would reload the page).
  $("auth-form").addEventListener("submit", (e) => { e.preventDefault(); loadStyles(); });
  try {
    state.config = await callJson("/ui/config.json", { method: "GET" });
  } catch (err) {
    showError($("sum-error"), err);
  }
  $("auth").hidden = !state.config.auth;
  await loadStyles();
  document.body.dataset.ready = "true"; // for the browser tests: handlers are in place
}

document.addEventListener("DOMContentLoaded", start);
