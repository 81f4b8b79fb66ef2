/* Small DOM writes shared by the components. They touch the page only when something changes,
 * because a live region re-announces whatever is rewritten, and they keep status badges and the
 * error alert consistent wherever they are used.
 */

export function setText(element, text) {
  if (element && element.textContent !== text) element.textContent = text;
}

export function setHidden(element, hidden) {
  if (element && element.hidden !== hidden) element.hidden = hidden;
}

/* Swaps the element's status-* class (keeping status-badge) for the given status. */
export function setStatusClass(element, status) {
  if (!element) return;
  for (const name of Array.from(element.classList)) {
    if (name.startsWith("status-") && name !== "status-badge") element.classList.remove(name);
  }
  element.classList.add(`status-${status || "unknown"}`);
}

let feedbackTimer = null;

/* Says what went wrong in an alert at the top of <main> (role=alert: read out at once); it
 * hides itself again after a while. */
export function announceError(text) {
  let box = document.getElementById("action-feedback");
  if (!box) {
    box = document.createElement("div");
    box.id = "action-feedback";
    box.className = "alert alert-danger";
    box.setAttribute("role", "alert");
    document.getElementById("main").prepend(box);
  }
  box.textContent = text;
  box.hidden = false;
  clearTimeout(feedbackTimer);
  feedbackTimer = setTimeout(() => {
    box.hidden = true;
  }, 15000);
}
