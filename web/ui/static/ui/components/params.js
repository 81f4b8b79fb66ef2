/* Reads a tool's parameters out of the run form into the JSON object the API takes as `params`.
 * Each control says its name and type in data-param / data-type; an empty optional field is left
 * out so the tool's default applies, and unreadable values become field errors.
 */

import { parseJson } from "../http.js";

/* The params object; pushes [name, message] onto `errors` for each value it cannot read. */
export function collectParams(form, errors) {
  const params = {};
  form.querySelectorAll("[data-param]").forEach((control) => {
    const name = control.dataset.param;
    const type = control.dataset.type;
    const required = control.dataset.required === "true";
    if (type === "boolean") {
      params[name] = control.checked;
      return;
    }
    const raw = control.value;
    if (raw === "" && !required) return; // the tool's default applies
    if (type === "integer" || type === "number") {
      const value = Number(raw);
      if (raw === "" || Number.isNaN(value)) errors.push([name, "Enter a number."]);
      else params[name] = value;
    } else if (type === "json") {
      const value = parseJson(raw);
      if (value === null && raw.trim() !== "null") errors.push([name, "This is not valid JSON."]);
      else params[name] = value;
    } else {
      params[name] = raw;
    }
  });
  return params;
}
