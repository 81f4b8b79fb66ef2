/* The status panel (ui/_status_panel.html) on the tool and execution pages: shows one
 * execution's status, progress, result, download and error, and which action forms apply (only
 * those in the execution's `actions`). It is an aria-live region, so it writes only what changed.
 */

import { setHidden, setStatusClass, setText } from "../dom.js";
import { isFinished } from "../executions.js";

export function StatusPanel(root) {
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
