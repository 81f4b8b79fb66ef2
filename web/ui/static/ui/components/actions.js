/* Forms that ask before they post, and the execution action buttons (cancel, retry, re-run,
 * delete). Without a page controller every such form posts to its Django view as usual, after a
 * confirm() when it has data-confirm. A page controller calls handleActions with its root and a
 * callback: the action forms inside that root then call the REST API instead, and the callback
 * hears the action and the execution the API answered with.
 */

import { announceError } from "../dom.js";
import { API_ROOT, api, problemText } from "../http.js";

/* Every page: a form with data-confirm posts only once the user agrees. A submit a controller
 * already took over (default prevented) is left alone. */
export function confirmForms() {
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

/* Sends the action forms inside `root` to the API; `onDone(action, execution, id)` after each
 * one that succeeded (a delete answers 204: no execution, only its id), an announced error
 * otherwise. */
export function handleActions(root, onDone) {
  root.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const action = form.dataset.action;
    if (!action) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const holder = form.closest("[data-execution-id]");
    const id = holder ? holder.dataset.executionId : "";
    if (!id) return;
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    const base = `${API_ROOT}executions/${encodeURIComponent(id)}/`;
    const result =
      action === "delete" ? await api("DELETE", base) : await api("POST", `${base}${action}/`);
    if (button) button.disabled = false;
    if (!result.ok) {
      announceError(problemText(result.data, result.status));
      return;
    }
    onDone(action, result.data, id);
  });
}
