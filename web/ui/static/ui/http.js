/* Talking to the REST API: the CSRF token Django wants on unsafe requests, a fetch wrapper that
 * never throws (a network failure is status 0), and the one-line text of a problem+json answer.
 * Pages and components import these instead of calling fetch themselves, so every request sends
 * the same headers and every failure reads the same way.
 */

export const API_ROOT = document.body.dataset.apiRoot || "/api/v1/";

export function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  if (input) return input.value;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/* Resolves to { ok, status, data }: data is the parsed JSON body or null. */
export async function api(method, url, payload) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
  } catch (error) {
    return { ok: false, status: 0, data: null };
  }
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  return { ok: response.ok, status: response.status, data };
}

export function problemText(problem, status) {
  if (status === 0) return "The server could not be reached. Check your connection and try again.";
  if (!problem || typeof problem !== "object") return `The server answered ${status}.`;
  const text = problem.detail || problem.title || `The server answered ${status}.`;
  return problem.code ? `${problem.code}: ${text}` : text;
}

/* JSON.parse that answers null instead of throwing. */
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    return null;
  }
}
