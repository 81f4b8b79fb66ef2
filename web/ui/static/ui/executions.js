/* How the page reads an execution the API or the live stream sent. The server owns the state
 * machine: whether a run is finished comes only from its `finished` flag, and which actions apply
 * only from its `actions` list; the script never derives either from the status name.
 */

import { wait, when } from "./format.js";

export function isFinished(execution) {
  return Boolean(execution && execution.finished);
}

/* An update older than what is shown (SSE and fetch answers can cross) is ignored. The
 * execution's stream version orders its states exactly; updated_at is the fallback. */
export function isOlder(candidate, shown) {
  if (!shown) return false;
  if (Number.isInteger(candidate.version) && Number.isInteger(shown.version)) {
    return candidate.version < shown.version;
  }
  return Boolean(shown.updated_at && candidate.updated_at && candidate.updated_at < shown.updated_at);
}

/* A pending retry ("retrying": another attempt comes by itself, at `next_attempt_at` or when a
 * worker is free) as the status panel shows it, counting down to `now` (ms): "Retrying in 25 s
 * (attempt 2 of 3)". Empty for any other status. The server's `retry_note` filter matches it. */
export function retryNote(execution, now) {
  if (!execution || execution.status !== "retrying") return "";
  const due = execution.next_attempt_at ? new Date(execution.next_attempt_at).getTime() : NaN;
  if (Number.isNaN(due)) return `Retrying: waiting for a worker (${nextAttempt(execution)})`;
  const left = Math.ceil((due - now) / 1000);
  if (left <= 0) return `Retrying shortly (${nextAttempt(execution)})`;
  return `Retrying in ${wait(left)} (${nextAttempt(execution)})`;
}

/* The same for screen readers, which a count ticking every second would keep interrupting:
 * the time it is due, which changes only when the run does. */
export function retrySaid(execution) {
  if (!execution || execution.status !== "retrying") return "";
  if (!execution.next_attempt_at) return retryNote(execution, 0);
  return `Retrying at ${when(execution.next_attempt_at)} (${nextAttempt(execution)})`;
}

/* The upcoming attempt: the one after the last started, "of" the tool's allowance if known. */
function nextAttempt(execution) {
  const attempt = `attempt ${Number(execution.attempt || 0) + 1}`;
  return execution.max_attempts ? `${attempt} of ${execution.max_attempts}` : attempt;
}
