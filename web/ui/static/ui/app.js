/* MagicToolbox UI script: progressive enhancement of server-rendered pages, no build step.
 *
 * Every page works without it (forms post to Django views that redirect). With it: the tool list
 * filters as you type; a tool's form posts to the REST API (multipart, `params` as JSON) and the
 * status panel and history follow the run live over SSE (`/live/me/`), falling back to polling
 * every 2.5 s when EventSource is missing or keeps failing; action buttons (re-run, delete,
 * cancel, retry) call the API; the execution page appends timeline events as they happen.
 * Markup for live rows comes from <template> elements rendered by the server, so a row added
 * here looks like one rendered there.
 */
(function () {
  "use strict";

  const POLL_MS = 2500;
  const SAFETY_POLL_MS = 15000; // even with SSE: a missed message must not leave a page stale
  const FINISHED = ["completed", "failed", "cancelled", "expired"];
  const body = document.body;
  const API = body.dataset.apiRoot || "/api/v1/";
  const LIVE = body.dataset.liveRoot || "/live/";

  // -- helpers ------------------------------------------------------------------------------

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function api(method, url, payload) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    let response;
    try {
      response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    } catch (error) {
      return { ok: false, status: 0, data: null };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  }

  function problemText(problem, status) {
    if (status === 0) return "The server could not be reached. Check your connection and try again.";
    if (!problem || typeof problem !== "object") return `The server answered ${status}.`;
    const text = problem.detail || problem.title || `The server answered ${status}.`;
    return problem.code ? `${problem.code}: ${text}` : text;
  }

  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch (error) {
      return null;
    }
  }

  function when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso;
    return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function fileSize(bytes) {
    const units = ["KB", "MB", "GB", "TB"];
    if (bytes < 1024) return `${bytes} byte${bytes === 1 ? "" : "s"}`;
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(1)} ${units[unit]}`;
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "—";
    return ms < 10000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  function eventName(type) {
    return String(type || "").split(".").pop();
  }

  function setText(element, text) {
    // Only touch the DOM on a change: a live region re-announces whatever is rewritten.
    if (element && element.textContent !== text) element.textContent = text;
  }

  function setHidden(element, hidden) {
    if (element && element.hidden !== hidden) element.hidden = hidden;
  }

  function isFinished(execution) {
    return Boolean(execution.finished) || FINISHED.includes(execution.status);
  }

  // An update older than what is shown (SSE and fetch answers can cross) is ignored. The
  // execution's stream version orders its states exactly; updated_at is the fallback.
  function isOlder(candidate, shown) {
    if (!shown) return false;
    if (Number.isInteger(candidate.version) && Number.isInteger(shown.version)) {
      return candidate.version < shown.version;
    }
    return Boolean(shown.updated_at && candidate.updated_at && candidate.updated_at < shown.updated_at);
  }

  function setStatusClass(element, status) {
    if (!element) return;
    for (const name of Array.from(element.classList)) {
      if (name.startsWith("status-") && name !== "status-badge") element.classList.remove(name);
    }
    element.classList.add(`status-${status || "unknown"}`);
  }

  let feedbackTimer = null;
  function announceError(text) {
    let box = document.getElementById("action-feedback");
    if (!box) {
      box = document.createElement("div");
      box.id = "action-feedback";
      box.className = "alert alert-danger";
      box.setAttribute("role", "alert");
      document.getElementById("main").prepend(box);
    }
    box.textContent = text;
    box.hidden = false;
    clearTimeout(feedbackTimer);
    feedbackTimer = setTimeout(() => {
      box.hidden = true;
    }, 15000);
  }

  // -- live updates -----------------------------------------------------------------------------

  /* Opens an EventSource; calls onFallback once if there is none, the server refuses it, or it
   * fails three times without opening in between (the browser reconnects by itself before that). */
  function openLive(url, { onStatus, onEvent, onOpen, onFallback }) {
    if (!("EventSource" in window)) {
      onFallback();
      return null;
    }
    let errors = 0;
    let gaveUp = false;
    const source = new EventSource(url);
    const giveUp = () => {
      if (gaveUp) return;
      gaveUp = true;
      source.close();
      onFallback();
    };
    source.addEventListener("open", () => {
      errors = 0;
      if (onOpen) onOpen();
    });
    source.addEventListener("status", (message) => {
      const data = parseJson(message.data);
      if (data && data.id) onStatus(data);
    });
    if (onEvent) {
      source.addEventListener("event", (message) => {
        const data = parseJson(message.data);
        if (data && data.id) onEvent(data);
      });
    }
    source.addEventListener("stream-error", giveUp);
    source.addEventListener("error", () => {
      errors += 1;
      if (source.readyState === EventSource.CLOSED || errors >= 3) giveUp();
    });
    window.addEventListener("pagehide", () => source.close());
    return source;
  }

  /* Calls `tick` every `fast` ms while `needed()` in fallback mode, every `slow` ms otherwise. */
  function makePoller(tick, needed) {
    let timer = null;
    let fallback = false;
    let running = false;
    const schedule = () => {
      clearTimeout(timer);
      timer = null;
      if (!needed()) return;
      timer = setTimeout(async () => {
        if (running) return schedule();
        running = true;
        try {
          await tick();
        } finally {
          running = false;
          schedule();
        }
      }, fallback ? POLL_MS : SAFETY_POLL_MS);
    };
    return {
      schedule,
      fallBack() {
        fallback = true;
        schedule();
      },
    };
  }

  // -- status panel -----------------------------------------------------------------------------

  function StatusPanel(root) {
    const $ = (id) => document.getElementById(id);
    const actionUrl = root.dataset.actionUrl || "";
    const sampleId = root.dataset.sampleId || "";
    const progress = $("status-progress");
    const bar = progress ? progress.querySelector(".progress-bar") : null;

    function setProgress(percent) {
      const value = String(Math.max(0, Math.min(100, Math.round(percent))));
      if (progress && progress.getAttribute("aria-valuenow") !== value) {
        progress.setAttribute("aria-valuenow", value);
        if (bar) bar.style.width = `${value}%`;
      }
    }

    function show(execution) {
      root.dataset.executionId = execution.id;
      setHidden($("status-idle"), true);
      setHidden($("status-body"), false);
      setText($("status-tool"), execution.tool_name || execution.tool || "");
      setText($("status-text"), execution.status);
      setStatusClass($("status-badge"), execution.status);
      setText($("status-message"), isFinished(execution) ? "" : execution.progress_message || "");
      setProgress(execution.status === "completed" ? 100 : Number(execution.percent || 0));

      const hasResult = execution.result !== null && execution.result !== undefined;
      setText($("result"), hasResult ? execution.result : "");
      setHidden($("result-block"), !hasResult);

      const actions = execution.actions || [];
      const link = $("download-link");
      const canDownload = actions.includes("download") && execution.links && execution.links.download;
      if (link) {
        if (canDownload) link.setAttribute("href", execution.links.download);
        else link.removeAttribute("href");
      }
      setText($("download-name"), execution.output_filename || "");
      setHidden($("download-block"), !canDownload);

      const error = execution.error;
      setText($("error-code"), error ? error.code : "");
      setText($("error-message"), error ? error.message : "");
      setHidden($("status-error"), !error);

      root.querySelectorAll("form[data-action]").forEach((form) => {
        form.action = actionUrl.replace(sampleId, execution.id).replace("/action/", `/${form.dataset.action}/`);
        setHidden(form, !actions.includes(form.dataset.action));
      });
      const page = $("execution-link");
      if (page && execution.links && execution.links.page) page.href = execution.links.page;
    }

    function sending(percent) {
      setHidden($("status-idle"), true);
      setHidden($("status-body"), false);
      setText($("status-text"), "sending");
      setStatusClass($("status-badge"), "submitted");
      setText($("status-message"), percent === null ? "" : `upload ${Math.round(percent)}%`);
      setProgress(percent || 0);
      setHidden($("result-block"), true);
      setHidden($("download-block"), true);
      setHidden($("status-error"), true);
      root.querySelectorAll("form[data-action]").forEach((form) => setHidden(form, true));
      const page = $("execution-link");
      if (page) page.removeAttribute("href");
    }

    function idle() {
      setHidden($("status-body"), true);
      setHidden($("status-idle"), false);
    }

    return { show, sending, idle };
  }

  // -- history sidebar --------------------------------------------------------------------------

  function History(list, template, tool) {
    const limit = Number(list.dataset.limit || 10);
    const empty = document.getElementById("history-empty");

    function fill(item, execution) {
      const actions = execution.actions || [];
      const stamp = when(execution.submitted_at);
      item.dataset.executionId = execution.id;
      item.dataset.status = execution.status;
      item.dataset.tool = execution.tool;
      item.dataset.updatedAt = execution.updated_at || "";
      if (Number.isInteger(execution.version)) item.dataset.version = String(execution.version);
      const link = item.querySelector("[data-field=link]");
      link.href = execution.links.page;
      setText(link, execution.input_filename || `Run ${String(execution.id).slice(0, 8)}`);
      const badge = item.querySelector("[data-field=status]");
      setText(badge, execution.status);
      setStatusClass(badge, execution.status);
      const time = item.querySelector("[data-field=time]");
      time.setAttribute("datetime", execution.submitted_at || "");
      setText(time, stamp);
      const download = item.querySelector("[data-field=download]");
      if (actions.includes("download") && execution.links.download) {
        download.href = execution.links.download;
        setHidden(download, false);
      } else {
        download.removeAttribute("href");
        setHidden(download, true);
      }
      item.querySelectorAll("form[data-action]").forEach((form) => {
        const action = form.dataset.action;
        form.action = form.action.replace(/\/executions\/[0-9a-f-]{36}\//, `/executions/${execution.id}/`);
        setHidden(form, !actions.includes(action));
      });
      const labels = {
        download: ` the result of the run at ${stamp}`,
        replay: ` the run at ${stamp}`,
        delete: ` the files of the run at ${stamp}`,
      };
      item.querySelectorAll("[data-field=label]").forEach((label) => {
        const form = label.closest("form[data-action]");
        setText(label, labels[form ? form.dataset.action : "download"]);
      });
    }

    function find(id) {
      return list.querySelector(`li[data-execution-id="${CSS.escape(id)}"]`);
    }

    function upsert(execution, { top = true } = {}) {
      if (execution.tool !== tool) return;
      let item = find(execution.id);
      if (item) {
        const shown = { updated_at: item.dataset.updatedAt };
        if (item.dataset.version) shown.version = Number(item.dataset.version);
        if (isOlder(execution, shown)) return;
        fill(item, execution);
        return;
      }
      item = template.content.firstElementChild.cloneNode(true);
      fill(item, execution);
      if (top) list.prepend(item);
      else list.append(item);
      while (list.children.length > limit) list.lastElementChild.remove();
      setHidden(empty, true);
    }

    function markCurrent(id) {
      list.querySelectorAll("li.is-current").forEach((li) => li.classList.remove("is-current"));
      const item = find(id);
      if (item) item.classList.add("is-current");
    }

    function unfinished() {
      return Array.from(list.querySelectorAll("li[data-execution-id]")).filter(
        (li) => !FINISHED.includes(li.dataset.status)
      ).length;
    }

    return { upsert, markCurrent, unfinished };
  }

  // -- action buttons (cancel, retry, re-run, delete) -------------------------------------------

  let onActionDone = null; // set by the page controller

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const action = form.dataset.action;
    if (!action) {
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
      return;
    }
    if (!onActionDone) {
      // No controller on this page: the plain form post does the job.
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
      return;
    }
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const holder = form.closest("[data-execution-id]");
    const id = holder ? holder.dataset.executionId : "";
    if (!id) return;
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    const base = `${API}executions/${encodeURIComponent(id)}/`;
    const result =
      action === "delete" ? await api("DELETE", base) : await api("POST", `${base}${action}/`);
    if (button) button.disabled = false;
    if (!result.ok) {
      announceError(problemText(result.data, result.status));
      return;
    }
    onActionDone(action, result.data);
  });

  // -- copy buttons -----------------------------------------------------------------------------

  document.querySelectorAll(".js-only").forEach((element) => {
    element.hidden = false;
  });

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const target = document.querySelector(button.dataset.copy);
    if (!target) return;
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    try {
      await navigator.clipboard.writeText(target.textContent);
      button.textContent = "Copied";
    } catch (error) {
      const range = document.createRange();
      range.selectNodeContents(target);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => {
      button.textContent = label;
    }, 2000);
  });

  // -- tool list: filter as you type ------------------------------------------------------------

  function toolList() {
    const input = document.getElementById("tool-search");
    const groups = document.getElementById("tool-groups");
    if (!input || !groups) return;
    const count = document.getElementById("tool-count");
    const none = document.getElementById("no-tools");
    const total = Number(count ? count.dataset.total : 0);
    let announceTimer = null;

    function apply() {
      const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      let shown = 0;
      groups.querySelectorAll("section[data-category]").forEach((section) => {
        let visible = 0;
        section.querySelectorAll("li[data-search]").forEach((item) => {
          const match = words.every((word) => item.dataset.search.includes(word));
          item.hidden = !match;
          if (match) visible += 1;
        });
        section.hidden = visible === 0;
        shown += visible;
      });
      setHidden(none, shown > 0);
      // Wait for a pause in typing before the live region speaks.
      clearTimeout(announceTimer);
      announceTimer = setTimeout(() => {
        setText(count, words.length ? `${shown} of ${total} tools match “${input.value.trim()}”.` : `${total} tools.`);
      }, 400);
      const url = new URL(window.location.href);
      if (words.length) url.searchParams.set("q", input.value.trim());
      else url.searchParams.delete("q");
      window.history.replaceState(null, "", url);
    }

    input.addEventListener("input", apply);
    input.form.addEventListener("submit", (event) => {
      event.preventDefault();
      apply();
    });
  }

  // -- tool page --------------------------------------------------------------------------------

  function collectParams(form, errors) {
    const params = {};
    form.querySelectorAll("[data-param]").forEach((control) => {
      const name = control.dataset.param;
      const type = control.dataset.type;
      const required = control.dataset.required === "true";
      if (type === "boolean") {
        params[name] = control.checked;
        return;
      }
      const raw = control.value;
      if (raw === "" && !required) return; // the tool's default applies
      if (type === "integer" || type === "number") {
        const value = Number(raw);
        if (raw === "" || Number.isNaN(value)) errors.push([name, "Enter a number."]);
        else params[name] = value;
      } else if (type === "json") {
        const value = parseJson(raw);
        if (value === null && raw.trim() !== "null") errors.push([name, "This is not valid JSON."]);
        else params[name] = value;
      } else {
        params[name] = raw;
      }
    });
    return params;
  }

  function FormErrors(form) {
    const box = document.getElementById("form-errors");

    function fieldError(control, message) {
      const errorBox = document.getElementById(`${control.id}_error`);
      control.setAttribute("aria-invalid", "true");
      if (errorBox) {
        errorBox.textContent = message;
        errorBox.hidden = false;
        const described = (control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
        if (!described.includes(errorBox.id)) {
          described.push(errorBox.id);
          control.setAttribute("aria-describedby", described.join(" "));
        }
      }
    }

    function clear() {
      box.hidden = true;
      box.textContent = "";
      form.querySelectorAll("[aria-invalid=true]").forEach((control) => {
        control.removeAttribute("aria-invalid");
        const errorBox = document.getElementById(`${control.id}_error`);
        if (errorBox) {
          errorBox.hidden = true;
          errorBox.textContent = "";
        }
      });
    }

    function controlFor(name) {
      if (name === "file") return document.getElementById("id_file");
      return form.querySelector(`[data-param="${CSS.escape(name)}"]`);
    }

    /* Shows field errors next to their controls and the rest in the alert; `fields` is a list
     * of [name, message]. */
    function show(summary, fields) {
      const rest = [];
      let first = null;
      for (const [name, message] of fields) {
        const control = name ? controlFor(name) : null;
        if (control) {
          fieldError(control, message);
          first = first || control;
        } else {
          rest.push(name ? `${name}: ${message}` : message);
        }
      }
      const lines = [summary, ...rest].filter(Boolean);
      box.textContent = "";
      for (const line of lines) {
        const span = document.createElement("span");
        span.className = "d-block";
        span.textContent = line;
        box.append(span);
      }
      box.hidden = lines.length === 0;
      if (first) first.focus();
    }

    return { show, clear };
  }

  // problem+json "errors": a list of {field|name|loc|pointer, message|detail|msg} or {field: msgs}.
  function fieldErrors(problem) {
    const errors = problem && problem.errors;
    const out = [];
    const clean = (name) => String(name || "").replace(/^\/?(params[./])?/, "").replace(/^body\./, "");
    if (Array.isArray(errors)) {
      for (const item of errors) {
        if (typeof item === "string") {
          out.push(["", item]);
          continue;
        }
        let name = item.field || item.name || item.pointer || item.loc || "";
        if (Array.isArray(name)) name = name[name.length - 1];
        out.push([clean(name), item.message || item.detail || item.msg || "Invalid value."]);
      }
    } else if (errors && typeof errors === "object") {
      for (const [name, messages] of Object.entries(errors)) {
        const text = Array.isArray(messages) ? messages.join(" ") : String(messages);
        out.push([clean(name), text]);
      }
    }
    return out;
  }

  function idempotencyKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  }

  function toolPage(root) {
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

    function update(execution) {
      execution = remember(execution);
      if (tracked && execution.id === tracked.id && !isOlder(execution, tracked)) {
        tracked = execution;
        panel.show(execution);
      }
      history.upsert(execution);
      poller.schedule();
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
        const answer = await api("GET", `${API}executions/?tool=${encodeURIComponent(tool)}&limit=10`);
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

    onActionDone = (action, execution) => {
      if (action === "replay") track(execution);
      else update(execution);
    };

    openLive(`${LIVE}me/`, {
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

      const request = new XMLHttpRequest();
      request.open("POST", `${API}executions/`);
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

  // -- execution page ---------------------------------------------------------------------------

  function Timeline(list, template) {
    function add(event, { fresh = true } = {}) {
      if (!event || !event.id) return;
      if (list.querySelector(`li[data-event-id="${CSS.escape(event.id)}"]`)) return;
      const item = template.content.firstElementChild.cloneNode(true);
      const name = eventName(event.type);
      item.dataset.eventId = event.id;
      item.dataset.version = String(event.streamversion);
      item.querySelector("[data-field=name]").textContent = name;
      const time = item.querySelector("[data-field=time]");
      time.setAttribute("datetime", event.time || "");
      time.textContent = when(event.time);
      item.querySelector("[data-field=version]").textContent = `version ${event.streamversion}`;
      item.querySelector("[data-field=summary]").textContent = event.summary || "";
      item.querySelector("[data-field=label]").textContent = ` of ${name}, version ${event.streamversion}`;
      const { summary, ...stored } = event; // the summary is the API's, not the stored event's
      item.querySelector("[data-field=json]").textContent = JSON.stringify(sortKeys(stored), null, 2);
      if (fresh) item.classList.add("is-new");
      // Keep stream order even when a message arrives late.
      const later = Array.from(list.children).find(
        (li) => Number(li.dataset.version) > Number(event.streamversion)
      );
      list.insertBefore(item, later || null);
    }
    return { add };
  }

  function sortKeys(value) {
    if (Array.isArray(value)) return value.map(sortKeys);
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortKeys(value[key])]));
    }
    return value;
  }

  function eventList(data) {
    if (Array.isArray(data)) return data;
    if (data && Array.isArray(data.results)) return data.results;
    if (data && Array.isArray(data.events)) return data.events;
    return [];
  }

  function executionPage(root) {
    const id = root.dataset.executionId;
    const initial = document.getElementById("execution-data");
    let current = initial ? parseJson(initial.textContent) : null;
    const panelRoot = document.getElementById("status-panel");
    const list = document.getElementById("timeline");
    const template = document.getElementById("timeline-item-template");
    if (!current || !panelRoot || !list || !template) return;
    const panel = StatusPanel(panelRoot);
    const timeline = Timeline(list, template);

    function summary(execution) {
      const set = (key, text) => setText(document.querySelector(`[data-summary="${key}"]`), text);
      set("status", execution.status);
      set("duration_ms", duration(execution.duration_ms));
      set("attempt", String(execution.attempt));
      for (const key of ["submitted_at", "started_at", "finished_at"]) {
        const element = document.querySelector(`[data-summary="${key}"]`);
        if (element) element.setAttribute("datetime", execution[key] || "");
        set(key, when(execution[key]));
      }
    }

    function update(execution) {
      if (execution.id !== id || isOlder(execution, current)) return;
      current = execution;
      panel.show(execution);
      summary(execution);
      poller.schedule();
    }

    async function refresh() {
      const answer = await api("GET", current.links.self);
      if (answer.ok && answer.data) update(answer.data);
      const events = await api("GET", current.links.events);
      if (events.ok) eventList(events.data).forEach((event) => timeline.add(event));
    }

    // Until finished; one more pass after, for the last event.
    let lastPass = false;
    const poller = makePoller(refresh, () => {
      if (!isFinished(current)) return true;
      if (lastPass) return false;
      lastPass = true;
      return true;
    });

    onActionDone = (action, execution) => {
      if (action === "replay" && execution.links && execution.links.page) {
        window.location.assign(execution.links.page);
        return;
      }
      lastPass = false;
      update(execution);
      refresh();
    };

    openLive(`${LIVE}executions/${encodeURIComponent(id)}/`, {
      onStatus: update,
      onEvent: (event) => timeline.add(event),
      onOpen: refresh,
      onFallback: () => poller.fallBack(),
    });
    poller.schedule();
  }

  // -- start ------------------------------------------------------------------------------------

  toolList();
  const toolRoot = document.getElementById("tool-app");
  if (toolRoot) toolPage(toolRoot);
  const executionRoot = document.getElementById("execution-app");
  if (executionRoot) executionPage(executionRoot);
})();
