/* A tool's page: the run form posts to the REST API (multipart, `params` as JSON, an
 * Idempotency-Key, upload progress in the status panel) instead of reloading the page; the panel
 * then follows the run, and the history sidebar every run of this tool, live over the user's SSE
 * stream (/live/me/) with polling as the fallback. The newest state of each run wins, whatever
 * order the stream and the API's answers arrive in.
 */

import { handleActions } from "../components/actions.js";
import { FormErrors, fieldErrors } from "../components/form-errors.js";
import { History } from "../components/history.js";
import { collectParams } from "../components/params.js";
import { StatusPanel } from "../components/status-panel.js";
import { isFinished, isOlder } from "../executions.js";
import { fileSize } from "../format.js";
import { API_ROOT, api, csrfToken, parseJson, problemText } from "../http.js";
import { LIVE_ROOT, makePoller, openLive } from "../live.js";

function idempotencyKey() {
  if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
  return `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

export function startToolPage(root) {
  const tool = root.dataset.tool;
  const form = document.getElementById("run-form");
  const panelRoot = document.getElementById("status-panel");
  const listElement = document.getElementById("history");
  const template = document.getElementById("history-item-template");
  if (!form || !panelRoot || !listElement || !template) return;
  const panel = StatusPanel(panelRoot);
  const history = History(listElement, template, tool);
  const errors = FormErrors(form);
  const runButton = document.getElementById("run-button");
  let tracked = null;
  // The newest state heard of each run: the stream can report a run finished before the
  // answer to its own submit arrives, and that older answer must not win.
  const newest = new Map();

  function remember(execution) {
    const known = newest.get(execution.id);
    if (!known || !isOlder(execution, known)) newest.set(execution.id, execution);
    return newest.get(execution.id);
  }

  // Runs deleted here: a live update still on its way must not bring one back.
  const deleted = new Set();

  function update(execution) {
    if (deleted.has(execution.id)) return;
    execution = remember(execution);
    if (tracked && execution.id === tracked.id && !isOlder(execution, tracked)) {
      tracked = execution;
      panel.show(execution);
    }
    history.upsert(execution);
    poller.schedule();
  }

  function forget(id) {
    deleted.add(id);
    history.remove(id);
    if (tracked && tracked.id === id) {
      tracked = null;
      panel.idle();
    }
  }

  function track(execution) {
    execution = remember(execution);
    tracked = execution;
    panel.show(execution);
    history.upsert(execution);
    history.markCurrent(execution.id);
    poller.schedule();
  }

  async function refresh() {
    if (tracked && !isFinished(tracked)) {
      const answer = await api("GET", tracked.links.self);
      if (answer.ok && answer.data) update(answer.data);
    }
    if (history.unfinished() > 0) {
      const answer = await api("GET", `${API_ROOT}executions/?tool=${encodeURIComponent(tool)}&limit=10`);
      if (answer.ok && answer.data && Array.isArray(answer.data.results)) {
        answer.data.results.slice().reverse().forEach(update);
      }
    }
  }

  const poller = makePoller(refresh, () => (tracked && !isFinished(tracked)) || history.unfinished() > 0);

  function restorePanel() {
    if (tracked) panel.show(tracked);
    else panel.idle();
  }

  // A re-run becomes the run the panel follows; any other action updates its run in place.
  handleActions(root, (action, execution, id) => {
    if (action === "replay") track(execution);
    else if (action === "delete") forget(id);
    else update(execution);
  });

  openLive(`${LIVE_ROOT}me/`, {
    onStatus: update,
    onOpen: refresh,
    onFallback: () => poller.fallBack(),
  });
  poller.schedule();

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    errors.clear();
    const problems = [];
    const params = collectParams(form, problems);
    const fileInput = document.getElementById("id_file");
    const file = fileInput && fileInput.files.length ? fileInput.files[0] : null;
    const maxSize = Number(root.dataset.maxSize || 0);
    if (fileInput && !file) problems.push(["file", "Choose a file."]);
    if (file && maxSize && file.size > maxSize) {
      problems.push(["file", `This file is ${fileSize(file.size)}; the limit is ${fileSize(maxSize)}.`]);
    }
    if (problems.length) {
      errors.show("Please correct the marked fields.", problems);
      return;
    }
    const data = new FormData();
    data.append("tool", tool);
    data.append("params", JSON.stringify(params));
    if (file) data.append("file", file, file.name);

    // XMLHttpRequest, not fetch: only it reports upload progress.
    const request = new XMLHttpRequest();
    request.open("POST", `${API_ROOT}executions/`);
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("Idempotency-Key", idempotencyKey());
    request.upload.addEventListener("progress", (progress) => {
      if (progress.lengthComputable) panel.sending((progress.loaded / progress.total) * 100);
    });
    const done = () => {
      runButton.disabled = false;
      runButton.removeAttribute("aria-busy");
    };
    request.addEventListener("load", () => {
      done();
      const answer = parseJson(request.responseText);
      if (request.status >= 200 && request.status < 300 && answer && answer.id) {
        track(answer);
        return;
      }
      restorePanel();
      errors.show(problemText(answer, request.status), fieldErrors(answer));
    });
    request.addEventListener("error", () => {
      done();
      restorePanel();
      errors.show(problemText(null, 0), []);
    });
    runButton.disabled = true;
    runButton.setAttribute("aria-busy", "true");
    panel.sending(file ? 0 : null);
    request.send(data);
  });
}
