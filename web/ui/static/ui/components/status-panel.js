/* The status panel (ui/_status_panel.html) on the tool and execution pages: shows one
 * execution's status, progress, result, download and error, and which action forms apply (only
 * those in the execution's `actions`). It is an aria-live region, so it writes only what changed.
 * A pending retry counts down to its next attempt in an aria-hidden line (ticking every second
 * would be read out every second); screen readers get the time it is due instead.
 */

import { setHidden, setStatusClass, setText } from "../dom.js";
import { isFinished, retryNote, retrySaid } from "../executions.js";

export function StatusPanel(root) {
  const $ = (id) => document.getElementById(id);
  const actionUrl = root.dataset.actionUrl || "";
  const sampleId = root.dataset.sampleId || "";
  const progress = $("status-progress");
  const bar = progress ? progress.querySelector(".progress-bar") : null;

  let ticker = null;

  function showRetry(execution) {
    clearInterval(ticker);
    ticker = null;
    const retrying = execution !== null && execution.status === "retrying";
    setHidden($("status-retry"), !retrying);
    setText($("status-retry-said"), retrying ? retrySaid(execution) : "");
    const tick = () => {
      setText($("status-retry-note"), retrying ? retryNote(execution, Date.now()) : "");
      if (ticker !== null && !(Date.parse(execution.next_attempt_at) > Date.now())) {
        clearInterval(ticker); // due: "Retrying shortly" until the server says more
        ticker = null;
      }
    };
    tick();
    if (retrying && execution.next_attempt_at) ticker = setInterval(tick, 1000);
  }

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
    // A pending retry's message would be the failed attempt's: its own line says what comes.
    const retrying = execution.status === "retrying";
    setText($("status-message"), isFinished(execution) || retrying ? "" : execution.progress_message || "");
    showRetry(execution);
    setProgress(Number(execution.percent || 0)); // 100 once completed: the server says so

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
    const box = $("status-error");
    if (box) {
      // The failure of an attempt that will be retried is a warning, not the run's end.
      box.classList.toggle("alert-warning", retrying);
      box.classList.toggle("alert-danger", !retrying);
    }
    setText($("error-lead"), error && retrying ? `Attempt ${execution.attempt} failed: ` : "");
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

  /* While a run's upload is on its way: `percent` is null when there is no file to count. */
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
    showRetry(null);
    root.querySelectorAll("form[data-action]").forEach((form) => setHidden(form, true));
    const page = $("execution-link");
    if (page) page.removeAttribute("href");
  }

  function idle() {
    showRetry(null);
    setHidden($("status-body"), true);
    setHidden($("status-idle"), false);
  }

  return { show, sending, idle };
}
