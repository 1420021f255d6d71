// Tiny DOM helpers shared by every module.

export const $ = (id) => document.getElementById(id);

// el("div", {class: "x", onclick: fn}, child, "text", [more]) — null/undefined children are skipped.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function row(label, value, attrs = {}) {
  return el("tr", attrs, el("th", { scope: "row" }, label),
    el("td", {}, value === undefined || value === null ? "—" : value));
}
