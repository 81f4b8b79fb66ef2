/* The history sidebar of a tool page: the user's last runs of that tool, newest first. Rows are
 * cloned from the server's <template> (ui/_history_item.html) and kept up to date as statuses
 * arrive; an update older than the row shows is ignored. Each row carries `data-finished` from
 * the API, so the page knows whether any run still needs watching.
 */

import { setHidden, setStatusClass, setText } from "../dom.js";
import { isFinished, isOlder } from "../executions.js";
import { when } from "../format.js";

export function History(list, template, tool) {
  const limit = Number(list.dataset.limit || 10);
  const empty = document.getElementById("history-empty");

  function fill(item, execution) {
    const actions = execution.actions || [];
    const stamp = when(execution.submitted_at);
    item.dataset.executionId = execution.id;
    item.dataset.status = execution.status;
    item.dataset.finished = isFinished(execution) ? "true" : "false";
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

  /* How many rows show a run that is not finished yet. */
  function unfinished() {
    return Array.from(list.querySelectorAll("li[data-execution-id]")).filter(
      (li) => li.dataset.finished !== "true"
    ).length;
  }

  /* A deleted run leaves the history. */
  function remove(id) {
    const item = find(id);
    if (item) item.remove();
    setHidden(empty, list.children.length > 0);
  }

  return { upsert, markCurrent, unfinished, remove };
}
