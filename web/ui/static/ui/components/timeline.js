/* The event timeline of an execution page: events arriving live (or by polling) are added from
 * the server's <template> (ui/_timeline_item.html), once each and in stream order. The one-line
 * summary is the API's `event.summary`, never worked out here; the JSON shown is the stored
 * event, so the API's `summary` key is left out of it.
 */

import { eventName, when } from "../format.js";

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortKeys(value[key])]));
  }
  return value;
}

/* The events of an API answer: a bare list, or a page of `results` or `events`. */
export function eventList(data) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data.results)) return data.results;
  if (data && Array.isArray(data.events)) return data.events;
  return [];
}

export function Timeline(list, template) {
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
