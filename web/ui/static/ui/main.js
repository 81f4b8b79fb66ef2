/* MagicToolbox's UI script, loaded as a native ES module (no bundler, no build step). Every page
 * works without it: forms post to Django views that redirect. This entry module turns on what
 * every page shares (confirm prompts, copy buttons, .js-only controls) and starts the controller
 * of the page it finds itself on, named by the root element the server rendered.
 */

import { confirmForms } from "./components/actions.js";
import { enableCopyButtons } from "./components/copy-buttons.js";
import { startExecutionPage } from "./pages/execution.js";
import { startToolList } from "./pages/tool-list.js";
import { startToolPage } from "./pages/tool.js";

const PAGES = [
  ["tool-groups", startToolList],
  ["tool-app", startToolPage],
  ["execution-app", startExecutionPage],
];

confirmForms();
document.querySelectorAll(".js-only").forEach((element) => {
  element.hidden = false;
});
enableCopyButtons();

for (const [id, start] of PAGES) {
  const root = document.getElementById(id);
  if (root) start(root);
}
