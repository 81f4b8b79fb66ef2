/* The live status client. Pages follow executions over Server-Sent Events (django-eventstream at
 * /live/…) and poll the API instead when EventSource is missing or the stream keeps failing.
 * Even with the stream open a slow safety poll runs, so a missed message cannot leave a page
 * stale.
 */

import { parseJson } from "./http.js";

export const LIVE_ROOT = document.body.dataset.liveRoot || "/live/";

const POLL_MS = 2500; // fallback mode: no stream
const SAFETY_POLL_MS = 15000; // even with SSE: a missed message must not leave a page stale

/* Opens an EventSource; calls onFallback once if there is none, the server refuses it, or it
 * fails three times without opening in between (the browser reconnects by itself before that). */
export function openLive(url, { onStatus, onEvent, onOpen, onFallback }) {
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

/* Calls `tick` every POLL_MS while `needed()` in fallback mode, every SAFETY_POLL_MS otherwise;
 * never two ticks at once. */
export function makePoller(tick, needed) {
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
