/* Errors of the run form: a field's message next to its control (aria-invalid, and linked by
 * aria-describedby so a screen reader reads it with the field), the rest in the form's alert,
 * and focus on the first bad field. Also reads the field errors out of a problem+json answer.
 */

export function FormErrors(form) {
  const box = document.getElementById("form-errors");

  function fieldError(control, message) {
    const errorBox = document.getElementById(`${control.id}_error`);
    control.setAttribute("aria-invalid", "true");
    if (errorBox) {
      errorBox.textContent = message;
      errorBox.hidden = false;
      const described = (control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      if (!described.includes(errorBox.id)) {
        described.push(errorBox.id);
        control.setAttribute("aria-describedby", described.join(" "));
      }
    }
  }

  function clear() {
    box.hidden = true;
    box.textContent = "";
    form.querySelectorAll("[aria-invalid=true]").forEach((control) => {
      control.removeAttribute("aria-invalid");
      const errorBox = document.getElementById(`${control.id}_error`);
      if (errorBox) {
        errorBox.hidden = true;
        errorBox.textContent = "";
      }
    });
  }

  function controlFor(name) {
    if (name === "file") return document.getElementById("id_file");
    return form.querySelector(`[data-param="${CSS.escape(name)}"]`);
  }

  /* Shows field errors next to their controls and the rest in the alert; `fields` is a list
   * of [name, message]. */
  function show(summary, fields) {
    const rest = [];
    let first = null;
    for (const [name, message] of fields) {
      const control = name ? controlFor(name) : null;
      if (control) {
        fieldError(control, message);
        first = first || control;
      } else {
        rest.push(name ? `${name}: ${message}` : message);
      }
    }
    const lines = [summary, ...rest].filter(Boolean);
    box.textContent = "";
    for (const line of lines) {
      const span = document.createElement("span");
      span.className = "d-block";
      span.textContent = line;
      box.append(span);
    }
    box.hidden = lines.length === 0;
    if (first) first.focus();
  }

  return { show, clear };
}

/* problem+json "errors": a list of {field|name|loc|pointer, message|detail|msg} or {field: msgs};
 * answers a list of [name, message]. */
export function fieldErrors(problem) {
  const errors = problem && problem.errors;
  const out = [];
  const clean = (name) => String(name || "").replace(/^\/?(params[./])?/, "").replace(/^body\./, "");
  if (Array.isArray(errors)) {
    for (const item of errors) {
      if (typeof item === "string") {
        out.push(["", item]);
        continue;
      }
      let name = item.field || item.name || item.pointer || item.loc || "";
      if (Array.isArray(name)) name = name[name.length - 1];
      out.push([clean(name), item.message || item.detail || item.msg || "Invalid value."]);
    }
  } else if (errors && typeof errors === "object") {
    for (const [name, messages] of Object.entries(errors)) {
      const text = Array.isArray(messages) ? messages.join(" ") : String(messages);
      out.push([clean(name), text]);
    }
  }
  return out;
}
