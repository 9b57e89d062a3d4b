// TrajectoryEditor: drag handles to targets over the intermediate image x~.
//
// Model traits (see ivwidgets/trajectory.py):
//   image (bytes, PNG of x~), width, height (native size),
//   trajectories (list of plain dicts: {points: [[x, y], ...], kind, easing, radius, start, end,
//                 mask: null | [{type: "brush", size, points} | {type: "lasso", points}
//                               | {type: "rle", shape: [h, w], runs: [...]}]}),
//                 (a bare ivcore RLE dict {shape, runs} is accepted as a one-shape mask)
//   selected (index or -1), tool ("drag" | "path" | "anchor" | "mask" | "lasso"),
//   easing and radius (defaults for new trajectories), mask_size (mask brush size, native px),
//   preview (bytes, mp4 of the motion preview made by the kernel), busy, error.
//
// Points are in native pixels of x~. The overlay is an SVG whose viewBox is the native size, so what is
// drawn lines up with the image at any CSS size.

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#e53935", "#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00acc1", "#6d4c41", "#3949ab"];
const HIT_PX = 10; // how close (CSS px) a press must be to grab a point
const LIVE_MS = 250; // how often a drag in progress is synced, so the preview follows the drag

function bytesOf(value) {
  if (!value) return null;
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

function blobUrl(value, type) {
  const bytes = bytesOf(value);
  if (!bytes || bytes.byteLength === 0) return null;
  return URL.createObjectURL(new Blob([bytes], { type }));
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function option(value, label = value) {
  return el("option", { value, textContent: label });
}

const clone = (value) => JSON.parse(JSON.stringify(value ?? null));
const round2 = (v) => Math.round(v * 100) / 100;
const shapesOf = (mask) => (!mask ? [] : Array.isArray(mask) ? mask : mask.runs ? [{ type: "rle", ...mask }] : []);

function rleCanvas(shape) {
  const [h, w] = shape.shape;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(w, h);
  let pos = 0;
  let on = false;
  for (const count of shape.runs) {
    if (on) {
      for (let i = pos; i < pos + count && i < w * h; i++) data.data[4 * i + 3] = 255;
    }
    pos += count;
    on = !on;
  }
  ctx.putImageData(data, 0, 0);
  return canvas.toDataURL();
}

function render({ model, el: root }) {
  root.classList.add("ivw", "ivw-traj");
  const base = el("img", { className: "ivw-base", alt: "intermediate image x~" });
  const overlay = svg("svg", { class: "ivw-overlay", preserveAspectRatio: "none" });
  overlay.style.cssText = "position:absolute;inset:0;width:100%;height:100%;touch-action:none;cursor:crosshair";
  const stage = el("div", { className: "ivw-stage" }, [base, overlay]);
  const preview = el("video", { className: "ivw-preview", loop: true, muted: true, autoplay: true, playsInline: true });
  preview.muted = true;

  const toolSel = el("select", { className: "ivw-tool", title: "tool" }, [
    option("drag", "Drag handle \u2192 target"),
    option("path", "Add path point"),
    option("anchor", "Anchor"),
    option("mask", "Mask brush"),
    option("lasso", "Mask lasso"),
  ]);
  const easingSel = el("select", { className: "ivw-easing", title: "easing of new trajectories" }, [
    option("linear"),
    option("ease-in-out"),
  ]);
  const clearBtn = el("button", { textContent: "Delete all", className: "ivw-delete-all" });
  const toolbar = el("div", { className: "ivw-toolbar" }, [toolSel, easingSel, clearBtn]);
  const list = el("ul", { className: "ivw-list" });
  const error = el("div", { className: "ivw-error", role: "alert" });
  const row = el("div", { className: "ivw-row" }, [
    el("figure", { className: "ivw-figure" }, [stage, el("figcaption", { textContent: "x\u0303: drag from a handle to a target" })]),
    el("figure", { className: "ivw-figure" }, [preview, el("figcaption", { textContent: "motion preview" })]),
  ]);
  root.append(toolbar, row, list, error);

  const urls = new Set();
  const forget = (url) => { if (url) { URL.revokeObjectURL(url); urls.delete(url); } };

  // Local working copy of the trajectories while a gesture is in progress; the model otherwise.
  let working = null;
  const trajs = () => working ?? (model.get("trajectories") || []);

  function size() {
    return [model.get("width") || 64, model.get("height") || 64];
  }
  function unitsPerCssPx() {
    const rect = overlay.getBoundingClientRect();
    const [w] = size();
    return rect.width > 0 ? w / rect.width : 1;
  }
  function toNative(event) {
    const rect = overlay.getBoundingClientRect();
    const [w, h] = size();
    // Clamped to the image: pointer capture keeps reporting positions outside it.
    const x = Math.min(w, Math.max(0, ((event.clientX - rect.left) * w) / rect.width));
    const y = Math.min(h, Math.max(0, ((event.clientY - rect.top) * h) / rect.height));
    return [round2(x), round2(y)];
  }

  function draw() {
    const [w, h] = size();
    overlay.setAttribute("viewBox", `0 0 ${w} ${h}`);
    stage.style.aspectRatio = `${w} / ${h}`;
    overlay.replaceChildren();
    const u = unitsPerCssPx();
    const selected = model.get("selected");
    trajs().forEach((t, i) => {
      const color = COLORS[i % COLORS.length];
      const g = svg("g", { "data-index": i, class: i === selected ? "ivw-sel" : "" });
      for (const shape of shapesOf(t.mask)) {
        if (shape.type === "lasso" && shape.points.length > 2) {
          g.append(svg("polygon", { points: shape.points.map((p) => p.join(",")).join(" "), fill: color, "fill-opacity": 0.3, stroke: "none" }));
        } else if (shape.type === "brush" && shape.points.length) {
          const pts = shape.points.length === 1 ? [shape.points[0], shape.points[0]] : shape.points;
          g.append(svg("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: color, "stroke-opacity": 0.3, "stroke-width": shape.size, "stroke-linecap": "round", "stroke-linejoin": "round" }));
        } else if (shape.type === "rle") {
          const img = svg("image", { href: rleCanvas(shape), x: 0, y: 0, width: w, height: h, opacity: 0.3, preserveAspectRatio: "none" });
          g.append(img);
        }
      }
      const pts = t.points || [];
      if (pts.length > 1) {
        g.append(svg("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: color, "stroke-width": 2 * u, "stroke-dasharray": t.kind === "anchor" ? `${3 * u}` : "none" }));
      }
      pts.forEach((p, j) => {
        const last = j === pts.length - 1 && j > 0;
        g.append(svg("circle", {
          cx: p[0], cy: p[1], r: (j === 0 ? 6 : 4.5) * u,
          fill: j === 0 ? color : last ? "#fff" : color, stroke: j === 0 ? "#fff" : color,
          "stroke-width": 1.5 * u, class: j === 0 ? "ivw-handle" : last ? "ivw-target" : "ivw-waypoint",
        }));
      });
      overlay.append(g);
    });
    if (lasso && lasso.points.length > 1) {
      overlay.append(svg("polyline", { points: lasso.points.map((p) => p.join(",")).join(" "), fill: "none", stroke: "#000", "stroke-width": u, "stroke-dasharray": `${2 * u}` }));
    }
  }

  function drawList() {
    const selected = model.get("selected");
    list.replaceChildren(
      ...trajs().map((t, i) => {
        const kind = el("select", { className: "ivw-kind", title: "kind" }, [option("object"), option("anchor"), option("camera")]);
        kind.value = t.kind || "object";
        const easing = el("select", { className: "ivw-row-easing", title: "easing" }, [option("linear"), option("ease-in-out")]);
        easing.value = t.easing || "linear";
        const del = el("button", { textContent: "\u2715", title: "delete", className: "ivw-delete" });
        const unmask = el("button", { textContent: "clear mask", className: "ivw-unmask", disabled: !shapesOf(t.mask).length });
        const label = el("span", { textContent: `#${i} ${(t.points || []).length} pts${shapesOf(t.mask).length ? " + mask" : ""}` });
        label.style.color = COLORS[i % COLORS.length];
        const li = el("li", { className: i === selected ? "ivw-selected" : "" }, [label, kind, easing, unmask, del]);
        li.addEventListener("click", (e) => { if (e.target === li || e.target === label) select(i); });
        kind.addEventListener("change", () => edit(i, { kind: kind.value }));
        easing.addEventListener("change", () => edit(i, { easing: easing.value }));
        unmask.addEventListener("click", () => edit(i, { mask: null }));
        del.addEventListener("click", () => {
          const next = clone(trajs());
          next.splice(i, 1);
          const sel = model.get("selected");
          push(next, sel === i ? -1 : sel > i ? sel - 1 : sel);
        });
        return li;
      }),
    );
  }

  function redraw() {
    draw();
    drawList();
  }

  function push(next, selected = model.get("selected")) {
    model.set("trajectories", clone(next));
    model.set("selected", selected);
    model.save_changes();
    redraw();
  }
  function edit(i, patch) {
    const next = clone(trajs());
    Object.assign(next[i], patch);
    push(next, i);
  }
  // The list as it is now with this gesture's trajectory `i` put in: another view (the widget shown
  // twice, a second user) may have changed other trajectories while this one was being dragged.
  function rebased(i, created) {
    const next = clone(model.get("trajectories") || []);
    const [t] = clone([working[i]]);
    if (created || i >= next.length) {
      next.push(t);
      return [next, next.length - 1];
    }
    next[i] = t;
    return [next, i];
  }
  function select(i) {
    model.set("selected", i);
    model.save_changes();
    redraw();
  }
  function showError(msg = model.get("error") || "") {
    error.textContent = msg;
    error.style.display = msg ? "block" : "none";
  }

  // Gestures.
  let drag = null; // {i, j, created, start}
  let lasso = null; // {i, type, points, size}
  let lastLive = 0;

  function hit(event) {
    const [x, y] = toNative(event);
    const tol = HIT_PX * unitsPerCssPx();
    let best = null;
    trajs().forEach((t, i) => (t.points || []).forEach((p, j) => {
      const d = Math.hypot(p[0] - x, p[1] - y);
      if (d <= tol && (!best || d < best.d)) best = { i, j, d };
    }));
    return best;
  }

  function onDown(event) {
    if (event.button !== undefined && event.button !== 0) return;
    event.preventDefault();
    overlay.setPointerCapture(event.pointerId);
    const p = toNative(event);
    const tool = model.get("tool");
    const selected = model.get("selected");
    working = clone(model.get("trajectories") || []);
    if (tool === "mask" || tool === "lasso") {
      if (selected < 0 || selected >= working.length) {
        working = null;
        showError("Select a trajectory (click its handle or its row) before painting its mask.");
        return;
      }
      lasso = { i: selected, type: tool === "mask" ? "brush" : "lasso", points: [p], size: Number(model.get("mask_size")) };
      draw();
      return;
    }
    const h = hit(event);
    if (h) {
      drag = { i: h.i, j: h.j, created: false };
      model.set("selected", h.i);
    } else if (tool === "path" && selected >= 0 && selected < working.length) {
      working[selected].points.push(p);
      drag = { i: selected, j: working[selected].points.length - 1, created: false };
    } else {
      const kind = tool === "anchor" ? "anchor" : "object";
      working.push({
        points: [p, [...p]], kind, easing: model.get("easing"), radius: Number(model.get("radius")),
        start: 0, end: 1, mask: null,
      });
      drag = { i: working.length - 1, j: tool === "anchor" ? 0 : 1, created: true, anchor: tool === "anchor" };
      model.set("selected", working.length - 1);
    }
    redraw();
  }

  function onMove(event) {
    if (lasso) {
      lasso.points.push(toNative(event));
      draw();
      return;
    }
    if (!drag || !working) return;
    const p = toNative(event);
    const t = working[drag.i];
    if (drag.anchor) {
      t.points = [p, [...p]];
    } else {
      t.points[drag.j] = p;
    }
    draw();
    const now = performance.now();
    if (model.get("live") && now - lastLive > LIVE_MS) {
      lastLive = now;
      const [next, i] = rebased(drag.i, drag.created);
      if (drag.created) drag = { ...drag, i, created: false };  // sent once: later moves edit it in place
      working = next;
      model.set("trajectories", clone(next));
      model.save_changes();
    }
  }

  function onUp(event) {
    if (overlay.hasPointerCapture(event.pointerId)) overlay.releasePointerCapture(event.pointerId);
    if (lasso) {
      if (event.type === "pointerup") lasso.points.push(toNative(event));
      const t = working[lasso.i];
      const shape = lasso.type === "brush"
        ? { type: "brush", size: lasso.size, points: lasso.points }
        : { type: "lasso", points: lasso.points };
      const target = lasso.i;
      lasso = null;
      if (shape.type === "brush" || shape.points.length > 2) t.mask = [...shapesOf(t.mask), shape];
      const [next, i] = rebased(target, false);
      working = null;
      push(next, i);
      return;
    }
    if (!drag || !working) return;
    if (event.type === "pointerup") onMove(event);
    const t = working[drag.i];
    const moved = Math.hypot(t.points[0][0] - t.points[t.points.length - 1][0], t.points[0][1] - t.points[t.points.length - 1][1]);
    if (drag.created && !drag.anchor && moved < 0.5) {
      // A click on empty space without a drag: no trajectory, just deselect.
      working = null;
      drag = null;
      push(clone(model.get("trajectories") || []), -1);
      return;
    }
    const [next, i] = rebased(drag.i, drag.created);
    working = null;
    drag = null;
    push(next, i);
  }

  overlay.addEventListener("pointerdown", onDown);
  overlay.addEventListener("pointermove", onMove);
  overlay.addEventListener("pointerup", onUp);
  overlay.addEventListener("pointercancel", onUp);

  toolSel.addEventListener("change", () => { model.set("tool", toolSel.value); model.save_changes(); });
  easingSel.addEventListener("change", () => { model.set("easing", easingSel.value); model.save_changes(); });
  clearBtn.addEventListener("click", () => push([], -1));

  let baseUrl = null;
  function showImage() {
    forget(baseUrl);
    baseUrl = blobUrl(model.get("image"), "image/png");
    if (baseUrl) { urls.add(baseUrl); base.src = baseUrl; } else base.removeAttribute("src");
  }
  let previewUrl = null;
  function showPreview() {
    const url = blobUrl(model.get("preview"), "video/mp4");
    if (url) {
      urls.add(url);
      preview.src = url;
      preview.play().catch(() => {});
    } else preview.removeAttribute("src");
    forget(previewUrl);
    previewUrl = url;
  }
  function showBusy() {
    preview.classList.toggle("ivw-busy", !!model.get("busy"));
  }
  function showTools() {
    toolSel.value = model.get("tool");
    easingSel.value = model.get("easing");
  }
  const onTrajs = () => { if (!working) redraw(); };
  const handlers = [
    ["change:image", showImage],
    ["change:trajectories change:selected change:width change:height", onTrajs],
    ["change:preview", showPreview],
    ["change:busy", showBusy],
    ["change:error", () => showError()],
    ["change:tool change:easing", showTools],
  ];
  for (const [name, fn] of handlers) model.on(name, fn);
  const resize = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => draw()) : null;
  resize?.observe(stage);
  showImage();
  showPreview();
  showBusy();
  showTools();
  showError();
  redraw();

  return () => {
    for (const [name, fn] of handlers) model.off(name, fn);
    resize?.disconnect();
    for (const url of [...urls]) forget(url);
  };
}

export default { render };
