// TakesStrip: a session's takes, newest first, as small looping thumbnails; pick one to show, two to compare.
//
// Model traits (see ivwidgets/takes_strip.py):
//   items (list of {id, thumb (data URL of an animated GIF), caption (its lambda), title (tooltip:
//     lambda, seed, motion text), kept (false once only the thumbnail is in memory)}), newest first,
//   selected (list of at most 2 take ids, in the order picked; set here and by the kernel),
//   older (how many older takes have no tile), diff (text from the kernel: the selected takes'
//   differences), error.
//
// Click a take: it alone is selected. Ctrl-, Cmd- or Shift-click, or its checkbox: add it to the
// selection or drop it from it; a third take drops the first picked.

const MAX_SELECTED = 2;

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

function render({ model, el: root }) {
  root.classList.add("ivw", "ivw-takes");
  const row = el("div", { className: "ivw-takes-row", role: "listbox" });
  row.setAttribute("aria-multiselectable", "true");
  row.setAttribute("aria-label", "takes, newest first");
  const empty = el("div", { className: "ivw-empty", textContent: "No takes yet: every Generate keeps one here." });
  const older = el("div", { className: "ivw-takes-older" });
  const hint = el("div", {
    className: "ivw-takes-hint",
    textContent: "Click a take to play it; Ctrl- or Shift-click (or tick) a second to compare them side by side.",
  });
  const diff = el("textarea", { className: "ivw-takes-diff", readOnly: true, rows: 4, spellcheck: false });
  diff.setAttribute("aria-label", "differences of the selected takes");
  const error = el("div", { className: "ivw-error", role: "alert" });
  root.append(row, older, empty, hint, diff, error);

  const tiles = new Map(); // take id -> { fig, img, box, cap }: kept across updates, so the GIFs run on
  const selected = () => model.get("selected") || [];
  function choose(ids) {
    model.set("selected", ids);
    model.save_changes();
    showSelected();
  }
  function toggle(id) {
    const now = selected();
    choose(now.includes(id) ? now.filter((x) => x !== id) : [...now, id].slice(-MAX_SELECTED));
  }

  function tile(item) {
    let t = tiles.get(item.id);
    if (!t) {
      const img = el("img", { className: "ivw-take-thumb", alt: item.id, draggable: false });
      const box = el("input", { type: "checkbox", className: "ivw-take-pick", title: "compare: tick two takes" });
      const cap = el("span", { className: "ivw-take-caption" });
      const fig = el("figure", { className: "ivw-take", tabIndex: 0 }, [img, el("figcaption", {}, [box, cap])]);
      fig.setAttribute("role", "option");
      fig.dataset.id = item.id;
      fig.addEventListener("click", (event) => {
        if (event.target === box) return;
        if (event.ctrlKey || event.metaKey || event.shiftKey) toggle(item.id);
        else choose([item.id]);
      });
      fig.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          if (event.ctrlKey || event.metaKey || event.shiftKey) toggle(item.id);
          else choose([item.id]);
        }
      });
      box.addEventListener("change", () => toggle(item.id));
      t = { fig, img, box, cap };
      tiles.set(item.id, t);
    }
    if (t.img.getAttribute("src") !== item.thumb) t.img.src = item.thumb;
    t.cap.textContent = item.caption;
    t.fig.title = item.title;
    t.fig.classList.toggle("ivw-evicted", !item.kept);
    return t.fig;
  }

  function showItems() {
    const items = model.get("items") || [];
    const ids = new Set(items.map((item) => item.id));
    for (const id of [...tiles.keys()]) if (!ids.has(id)) tiles.delete(id);
    row.replaceChildren(...items.map(tile));
    row.style.display = items.length ? "" : "none";
    empty.style.display = items.length ? "none" : "";
    hint.style.display = items.length > 1 ? "" : "none";
    const n = Number(model.get("older")) || 0;
    older.textContent = n ? `and ${n} older take${n === 1 ? "" : "s"} (in session.takes)` : "";
    older.style.display = n ? "" : "none";
    showSelected();
  }
  function showSelected() {
    const ids = selected();
    for (const [id, t] of tiles) {
      const on = ids.includes(id);
      t.fig.classList.toggle("ivw-selected", on);
      t.fig.setAttribute("aria-selected", String(on));
      t.box.checked = on;
    }
  }
  function showDiff() {
    const text = model.get("diff") || "";
    diff.value = text;
    diff.style.display = text ? "" : "none";
  }
  function showError() {
    const msg = model.get("error") || "";
    error.textContent = msg;
    error.style.display = msg ? "block" : "none";
  }

  const handlers = [
    ["change:items change:older", showItems],
    ["change:selected", showSelected],
    ["change:diff", showDiff],
    ["change:error", showError],
  ];
  for (const [name, fn] of handlers) model.on(name, fn);
  showItems();
  showDiff();
  showError();

  return () => {
    for (const [name, fn] of handlers) model.off(name, fn);
    tiles.clear();
  };
}

export default { render };
