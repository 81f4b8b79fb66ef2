/* The tool list page: filters the tools as you type, without a round trip. The search form still
 * works without the script (a GET with ?q=); here the URL keeps ?q= in step so a reload or a
 * shared link shows the same filter, and the count is announced once typing pauses.
 */

import { setHidden, setText } from "../dom.js";

export function startToolList(groups) {
  const input = document.getElementById("tool-search");
  if (!input) return;
  const count = document.getElementById("tool-count");
  const none = document.getElementById("no-tools");
  const total = Number(count ? count.dataset.total : 0);
  let announceTimer = null;

  function apply() {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    groups.querySelectorAll("section[data-category]").forEach((section) => {
      let visible = 0;
      section.querySelectorAll("li[data-search]").forEach((item) => {
        const match = words.every((word) => item.dataset.search.includes(word));
        item.hidden = !match;
        if (match) visible += 1;
      });
      section.hidden = visible === 0;
      shown += visible;
    });
    setHidden(none, shown > 0);
    // Wait for a pause in typing before the live region speaks.
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => {
      setText(count, words.length ? `${shown} of ${total} tools match “${input.value.trim()}”.` : `${total} tools.`);
    }, 400);
    const url = new URL(window.location.href);
    if (words.length) url.searchParams.set("q", input.value.trim());
    else url.searchParams.delete("q");
    window.history.replaceState(null, "", url);
  }

  input.addEventListener("input", apply);
  input.form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
}
