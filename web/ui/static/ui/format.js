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

/* A wait as people read it: "25 s", "4 min 5 s", "1 h 2 min" (the server's `wait` too). */
export function wait(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) {
    const rest = seconds % 60;
    const minutes = Math.floor(seconds / 60);
    return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  }
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
}
