/* How values read on a page when the script writes them: times, file sizes, durations and event
 * names. They match the server's template filters (web/ui/templatetags/ui_extras.py), so a row
 * added live looks like one the server rendered.
 */

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
}

export function fileSize(bytes) {
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

export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 10000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/* The last part of an event's type: "….Completed" reads "Completed". */
export function eventName(type) {
  return String(type || "").split(".").pop();
}
