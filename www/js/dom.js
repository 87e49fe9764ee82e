// Small DOM helpers. Every value reaches the page as text nodes or properties, never as HTML:
// record fields are user data and may hold markup.

export const $ = (id) => document.getElementById(id);

/** `h("li", { class: "x", onclick: f }, "text", child)`: an element with text children. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key in el) el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Shows or hides `el`, keeping the markup simple (`hidden` attribute). */
export function showIf(el, visible) {
  el.hidden = !visible;
}

export const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });

/** A value as the page shows it: strings quoted, the rest as JSON, absent as a dash. */
export function shown(value) {
  if (value === undefined) return "—";
  if (typeof value === "string") return `“${value}”`;
  return JSON.stringify(value);
}

/** Temporary ids (`tmp-…`) are the client's until the server gives the record its own. */
export const isTemp = (id) => String(id).startsWith("tmp-");
export const idLabel = (id) => (isTemp(id) ? "new" : `#${id}`);

/** A span that counts down to `until` (ms since epoch), refreshed by `tickCountdowns`. */
export function countdown(until) {
  const el = h("span", { class: "countdown", dataset: { until: String(until) } });
  paint(el);
  return el;
}

function paint(el) {
  const s = Math.max(0, Math.ceil((Number(el.dataset.until) - Date.now()) / 1000));
  el.textContent = s > 0 ? `in ${s} s` : "now";
}

export function tickCountdowns() {
  for (const el of document.querySelectorAll(".countdown")) paint(el);
}
