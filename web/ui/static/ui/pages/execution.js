/* An execution's own page: the status panel and the summary follow the run, and the event
 * timeline grows as events are recorded, live over the execution's SSE stream with polling as
 * the fallback. Polling stops once the API says the run is finished, after one more pass for its
 * last event. A re-run opens the new run's page.
 */

import { handleActions } from "../components/actions.js";
import { StatusPanel } from "../components/status-panel.js";
import { Timeline, eventList } from "../components/timeline.js";
import { setText } from "../dom.js";
import { isFinished, isOlder } from "../executions.js";
import { duration, when } from "../format.js";
import { api, parseJson } from "../http.js";
import { LIVE_ROOT, makePoller, openLive } from "../live.js";

/* The summary list beside the timeline ([data-summary] elements). */
function showSummary(execution) {
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

export function startExecutionPage(root) {
  const id = root.dataset.executionId;
  const initial = document.getElementById("execution-data");
  let current = initial ? parseJson(initial.textContent) : null;
  const panelRoot = document.getElementById("status-panel");
  const list = document.getElementById("timeline");
  const template = document.getElementById("timeline-item-template");
  if (!current || !panelRoot || !list || !template) return;
  const panel = StatusPanel(panelRoot);
  const timeline = Timeline(list, template);

  function update(execution) {
    if (execution.id !== id || isOlder(execution, current)) return;
    current = execution;
    panel.show(execution);
    showSummary(execution);
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

  handleActions(root, (action, execution) => {
    if (action === "replay" && execution.links && execution.links.page) {
      window.location.assign(execution.links.page);
      return;
    }
    if (action === "delete") {  // this page is gone now: back to the run's tool
      window.location.assign(root.dataset.toolUrl || "/");
      return;
    }
    lastPass = false;
    update(execution);
    refresh();
  });

  openLive(`${LIVE_ROOT}executions/${encodeURIComponent(id)}/`, {
    onStatus: update,
    onEvent: (event) => timeline.add(event),
    onOpen: refresh,
    onFallback: () => poller.fallBack(),
  });
  poller.schedule();
}
