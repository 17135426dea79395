// The chat panel's conversation box, in the browser (an anywidget module).
//
// The exchanges are the cell's own Markdown outputs under the panel: the record a
// saved notebook keeps, and the only copy. While the panel is alive this box shows
// copies of them, capped in height, and hides the originals, so the page shows each
// exchange once and the widget state holds none of it. Where the outputs cannot be
// found (a frontend other than JupyterLab or Notebook 7), the box stays hidden and the
// records show under the panel as they are.
//
// It keeps the newest text in view while it streams, unless the user scrolled up to
// read, and Ctrl/Cmd+Enter or Shift+Enter in the panel's question box sends (as the
// Send button does; ipywidgets' Textarea has no key event of its own).

const SLACK = 32; // pixels from the bottom that still count as "at the bottom"

function outputsAfter(mine) {
  // The Markdown outputs that follow the panel in its cell, up to the next panel.
  const found = [];
  for (let node = mine.nextElementSibling; node; node = node.nextElementSibling) {
    if (node.querySelector(".lollms-panel")) break;
    // JupyterLab renders Markdown into the output element itself (it carries both classes).
    const output = node.querySelector(".jp-OutputArea-output.jp-RenderedMarkdown, .jp-OutputArea-output .jp-RenderedMarkdown");
    if (output) found.push([node, output]);
  }
  return found;
}

function render({ model, el }) {
  el.classList.add("lollms-chat-box");
  el.style.display = "none"; // until there is something to show
  const content = document.createElement("div");
  el.appendChild(content);
  const copies = new Map(); // hidden output -> [its html when copied, its copy]
  let follow = true;
  let alive = true;
  let observer = null;
  let resizer = null;
  let panel = null;
  let scheduled = false;

  const atBottom = () => el.scrollHeight - el.scrollTop - el.clientHeight <= SLACK;
  const onScroll = () => { follow = atBottom(); };
  el.addEventListener("scroll", onScroll);
  const toBottom = () => { if (follow) el.scrollTop = el.scrollHeight; };

  function sync() {
    scheduled = false;
    const mine = el.closest(".jp-OutputArea-child");
    if (!alive || !mine) return;
    const found = outputsAfter(mine);
    const keep = new Set(found.map(([node]) => node));
    for (const [node, [, copy]] of copies) {
      if (!keep.has(node)) { copy.remove(); copies.delete(node); node.style.display = ""; }
    }
    let previous = null;
    for (const [node, output] of found) {
      const html = output.innerHTML;
      let entry = copies.get(node);
      if (!entry || entry[0] !== html) {
        const copy = document.createElement("div");
        copy.className = "lollms-chat-entry jp-RenderedHTMLCommon jp-RenderedMarkdown";
        copy.innerHTML = html;
        if (entry) entry[1].replaceWith(copy);
        entry = [html, copy];
        copies.set(node, entry);
      }
      // In the outputs' order, after the one before it (a new record goes last).
      const copy = entry[1];
      if (previous ? previous.nextSibling !== copy : content.firstChild !== copy) {
        if (previous) previous.after(copy); else content.prepend(copy);
      }
      previous = copy;
      node.style.display = "none";
    }
    el.style.display = found.length ? "" : "none";
    toBottom();
  }

  function schedule(mutations) {
    // Our own copies changing are no news.
    if (mutations && !mutations.some((m) => !el.contains(m.target))) return;
    if (!scheduled) { scheduled = true; requestAnimationFrame(sync); }
  }

  function onKey(event) {
    if (event.key !== "Enter" || event.isComposing) return;
    if (!(event.ctrlKey || event.metaKey || event.shiftKey)) return;
    const box = event.target;
    if (!(box instanceof HTMLTextAreaElement) || !box.closest(".lollms-question")) return;
    event.preventDefault();
    event.stopPropagation(); // neither a newline nor the notebook's own Shift+Enter
    model.send({ event: "send", text: box.value });
  }

  function attach() {
    if (!alive) return;
    if (!el.isConnected) { requestAnimationFrame(attach); return; }
    panel = el.closest(".lollms-chat");
    // The question box's view stops its key events from bubbling: listen while they go down.
    if (panel) panel.addEventListener("keydown", onKey, true);
    const mine = el.closest(".jp-OutputArea-child");
    if (!mine || !mine.parentElement) return; // not JupyterLab: the records show as they are
    observer = new MutationObserver(schedule);
    observer.observe(mine.parentElement, { childList: true, subtree: true, characterData: true });
    resizer = new ResizeObserver(toBottom); // pictures and maths that lay out later
    resizer.observe(content);
    sync();
  }
  attach();

  return () => {
    alive = false;
    if (observer) observer.disconnect();
    if (resizer) resizer.disconnect();
    if (panel) panel.removeEventListener("keydown", onKey, true);
    for (const node of copies.keys()) node.style.display = "";
    copies.clear();
  };
}

export default { render };
