/* How the page reads an execution the API or the live stream sent. The server owns the state
 * machine: whether a run is finished comes only from its `finished` flag, and which actions apply
 * only from its `actions` list; the script never derives either from the status name.
 */

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
