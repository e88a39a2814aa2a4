// Shared by every console page: the path prefix, the CSRF token, and calls to the JSON API with the session cookie.
// No framework: a few functions, loaded as an ES module from this server.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";

/** The path Odin is served under ("" or e.g. "/odin"): every URL the pages build starts with it. */
export const base = meta("odin-base");

/** A call to the JSON API; the browser sends the HttpOnly session cookie, we add the page's CSRF token. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { "X-CSRF-Token": meta("csrf-token") };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(base + path, {
    method, headers, signal, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    location.href = `${base}/console/login?next=${encodeURIComponent(location.pathname + location.search)}`;
  }
  return res;
}

/** The message of an API error answer ({status_code, detail}), or its status line. */
export async function errorText(res) {
  try {
    const body = await res.json();
    return body.detail || `${res.status} ${res.statusText}`;
  } catch {
    return `${res.status} ${res.statusText}`;
  }
}

/** `1h02m`, `3m05s`, `12s`: as the server renders them. */
export function formatDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** Durations still going (a start, no end) tick every second. */
export function tickDurations(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll(".duration[data-start]")) {
    const start = Date.parse(el.dataset.start);
    const end = el.dataset.end ? Date.parse(el.dataset.end) : now;
    if (!Number.isNaN(start)) el.textContent = formatDuration(end - start);
  }
}

/** Bytes for a person, as the server renders them: `512 B`, `12.3 kB`, `4.1 MB`, `2.0 GB`. */
export function formatSize(n) {
  for (const [unit, scale] of [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) if (n >= scale) return `${(n / scale).toFixed(1)} ${unit}`;
  return `${n} B`;
}

// Buttons that only work through a module's handlers are rendered `disabled data-js` and enabled here, once the
// module has attached them: a click that comes before (a slow page, a quick hand, a test) would otherwise do nothing
// or submit the form natively (a GET reload of the page with the form's fields in its address).
export function enableScripted(root = document) {
  for (const el of root.querySelectorAll("[data-js][disabled]")) el.disabled = false;
}
