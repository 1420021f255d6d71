// The model's Markdown (bold, lists, code, tables) as DOM: parsed by marked, then sanitised by DOMPurify
// before anything reaches the page (both vendored from npm: server/web/vendor, `make web-vendor`). No HTML
// from the model or from any stored text (alert texts, notices) is ever inserted unsanitised: raw HTML in a
// reply is dropped by the allow-list below, links keep http(s)/mailto only and open in a new tab.
import { Marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";

const marked = new Marked({ gfm: true, breaks: true, async: false });

const ALLOWED_TAGS = ["p", "br", "strong", "b", "em", "i", "del", "s", "code", "pre", "ul", "ol", "li",
  "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th", "td", "a", "span"];
const ALLOWED_ATTR = ["href", "title", "align", "start"];
const SAFE_URL = /^(?:https?:|mailto:|#)/i;

const purify = DOMPurify();
purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") || "";
    if (!SAFE_URL.test(href.trim())) node.removeAttribute("href");
    else { node.setAttribute("target", "_blank"); node.setAttribute("rel", "noopener noreferrer"); }
  }
});

// Markdown text -> a sanitised DocumentFragment (never a string handed to innerHTML).
export function markdownFragment(text) {
  const html = marked.parse(String(text ?? "")).trim(); // no stray newline text node after the last block
  return purify.sanitize(html, {
    ALLOWED_TAGS, ALLOWED_ATTR: [...ALLOWED_ATTR, "target", "rel"], ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false, RETURN_DOM_FRAGMENT: true,
  });
}

export function renderMarkdown(node, text) {
  node.replaceChildren(markdownFragment(text));
  node.classList.add("md");
  return node;
}
