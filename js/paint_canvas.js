// PaintCanvas: paint an RGBA layer over the image instruction x, shared by every view of the model.
//
// Model traits (see ivwidgets/paint.py):
//   image (bytes, PNG of x), width, height (native size of x),
//   color ("#rrggbb"), swatches (list of "#rrggbb": one-click colours beside the picker), brush_size (px at native resolution), opacity (0..1), tool ("brush" | "eraser"),
//   strokes (the shared history, kernel-owned: stroke dicts with an id; a {tool: "layer", src: <PNG data URL>}
//     entry draws a whole layer: the session's paint shown by the kernel),
//   undone (the shared redo stack, kernel-owned),
//   edited (bytes, PNG of the edited intermediate x~' computed by the kernel), show_edited, busy, error.
//
// Messages to the kernel (events, not traits: a trait is last-writer-wins across views, an event appends):
//   {event: "stroke", stroke} with one buffer, the PNG of that stroke alone, sent when a stroke ends;
//   {event: "undo"}, {event: "redo"}, {event: "clear", id}.
// Until the kernel's history holds a stroke this view sent, the view draws it on top ("pending"), so
// nothing flickers; a {refused: id} message from the kernel drops it.
//
// The canvases keep the image's native resolution (the backing store); CSS scales them, and pointer
// positions are mapped back to native pixels, so the layer lines up with x exactly.

function bytesOf(value) {
  if (!value) return null;
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

function pngUrl(value) {
  const bytes = bytesOf(value);
  if (!bytes || bytes.byteLength === 0) return null;
  return URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

// Draw one stroke (a batch of pointer positions) on ctx. The stroke is first drawn opaque on a scratch
// canvas and then composited once with its opacity, so overlapping segments do not darken each other.
function drawStroke(ctx, stroke, scratch) {
  const { width, height } = ctx.canvas;
  if (stroke.tool === "clear") {
    ctx.clearRect(0, 0, width, height);
    return;
  }
  renderAlone(stroke, scratch, width, height);
  ctx.save();
  ctx.globalAlpha = stroke.tool === "eraser" ? 1 : stroke.opacity ?? 1;
  ctx.globalCompositeOperation = stroke.tool === "eraser" ? "destination-out" : "source-over";
  ctx.drawImage(scratch, 0, 0);
  ctx.restore();
}

// The stroke alone, opaque, on `scratch` (width x height): what drawStroke composites and what is sent.
function renderAlone(stroke, scratch, width, height) {
  scratch.width = width;
  scratch.height = height;
  const s = scratch.getContext("2d");
  s.clearRect(0, 0, width, height);
  s.strokeStyle = s.fillStyle = stroke.color || "#000000";
  s.lineWidth = stroke.size;
  s.lineCap = "round";
  s.lineJoin = "round";
  const pts = stroke.points || [];
  if (pts.length === 1) {
    s.beginPath();
    s.arc(pts[0][0], pts[0][1], stroke.size / 2, 0, 2 * Math.PI);
    s.fill();
  } else if (pts.length > 1) {
    s.beginPath();
    s.moveTo(pts[0][0], pts[0][1]);
    for (const [x, y] of pts.slice(1)) s.lineTo(x, y);
    s.stroke();
  }
}

// An id for a stroke: unique across views (crypto.randomUUID needs a secure context, so not always).
function strokeId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

function render({ model, el: root }) {
  root.classList.add("ivw", "ivw-paint");
  const base = el("img", { className: "ivw-base", alt: "image x" });
  const layer = el("canvas", { className: "ivw-layer" });
  const live = el("canvas", { className: "ivw-live" });
  const scratch = document.createElement("canvas");
  const stage = el("div", { className: "ivw-stage" }, [base, layer, live]);

  const color = el("input", { type: "color", title: "brush colour", className: "ivw-color" });
  const size = el("input", { type: "range", min: 1, max: 64, step: 1, title: "brush size", className: "ivw-size" });
  const opacity = el("input", { type: "range", min: 0.05, max: 1, step: 0.05, title: "opacity", className: "ivw-opacity" });
  const brushBtn = el("button", { textContent: "Brush", className: "ivw-brush" });
  const eraserBtn = el("button", { textContent: "Eraser", className: "ivw-eraser" });
  const undoBtn = el("button", { textContent: "Undo", className: "ivw-undo" });
  const redoBtn = el("button", { textContent: "Redo", className: "ivw-redo" });
  const clearBtn = el("button", { textContent: "Clear", className: "ivw-clear" });
  const swatches = el("span", { className: "ivw-swatches" });
  const toolbar = el("div", { className: "ivw-toolbar" }, [
    brushBtn, eraserBtn, color, swatches, size, opacity, undoBtn, redoBtn, clearBtn,
  ]);
  const error = el("div", { className: "ivw-error", role: "alert" });
  const editedImg = el("img", { className: "ivw-edited", alt: "edited intermediate x~'" });
  const editedBox = el("figure", { className: "ivw-figure" }, [
    editedImg, el("figcaption", { textContent: "x\u0303\u2032 (edited intermediate)" }),
  ]);
  const paintBox = el("figure", { className: "ivw-figure" }, [
    stage, el("figcaption", { textContent: "x (paint here)" }),
  ]);
  const row = el("div", { className: "ivw-row" }, [paintBox, editedBox]);
  root.append(toolbar, row, error);

  const urls = new Set();
  const track = (url) => (url && urls.add(url), url);
  const forget = (url) => { if (url) { URL.revokeObjectURL(url); urls.delete(url); } };

  function setSize() {
    const w = model.get("width") || 64;
    const h = model.get("height") || 64;
    for (const c of [layer, live]) {
      if (c.width !== w || c.height !== h) {
        c.width = w;
        c.height = h;
      }
    }
    stage.style.aspectRatio = `${w} / ${h}`;
  }

  // Layers shown by the kernel (a restored take's paint) are PNG data URLs: decoded once, then redrawn.
  const layerImages = new Map();
  function layerImage(src) {
    let img = layerImages.get(src);
    if (!img) {
      img = new Image();
      img.onload = () => replay();
      img.src = src;
      layerImages.set(src, img);
    }
    return img.complete && img.naturalWidth ? img : null;
  }

  // Strokes this view sent that the kernel's history does not hold yet, drawn on top until it does.
  let pending = [];
  function history() {
    const strokes = model.get("strokes") || [];
    const known = new Set([...strokes, ...(model.get("undone") || [])].map((s) => s.id));
    pending = pending.filter((s) => !known.has(s.id));
    return [...strokes, ...pending];
  }

  function replay() {
    setSize();
    const ctx = layer.getContext("2d");
    ctx.clearRect(0, 0, layer.width, layer.height);
    const used = new Set();
    const strokes = history();
    for (const stroke of strokes) {
      if (stroke.tool === "layer") {
        used.add(stroke.src);
        const img = layerImage(stroke.src);
        if (img) ctx.drawImage(img, 0, 0, layer.width, layer.height);
      } else {
        drawStroke(ctx, stroke, scratch);
      }
    }
    for (const src of [...layerImages.keys()]) if (!used.has(src)) layerImages.delete(src);
    undoBtn.disabled = strokes.length === 0;
    redoBtn.disabled = (model.get("undone") || []).length === 0;
  }

  let baseUrl = null;
  function showImage() {
    forget(baseUrl);
    baseUrl = track(pngUrl(model.get("image")));
    if (baseUrl) base.src = baseUrl;
    else base.removeAttribute("src");
  }
  let editedUrl = null;
  function showEdited() {
    forget(editedUrl);
    editedUrl = track(pngUrl(model.get("edited")));
    if (editedUrl) editedImg.src = editedUrl;
    else editedImg.removeAttribute("src");
    editedBox.classList.toggle("ivw-busy", !!model.get("busy"));
    editedBox.style.display = model.get("show_edited") === false ? "none" : "";
  }
  function showError() {
    const msg = model.get("error") || "";
    error.textContent = msg;
    error.style.display = msg ? "block" : "none";
  }
  function showSwatches() {
    swatches.replaceChildren(...(model.get("swatches") || []).map((hex) => {
      const b = el("button", { className: "ivw-swatch", title: hex });
      b.style.background = hex;
      b.addEventListener("click", () => { setTrait("color", hex); setTrait("tool", "brush"); });
      return b;
    }));
  }
  function showTools() {
    color.value = model.get("color") || "#ff0000";
    size.value = model.get("brush_size");
    opacity.value = model.get("opacity");
    const tool = model.get("tool");
    brushBtn.classList.toggle("ivw-active", tool === "brush");
    eraserBtn.classList.toggle("ivw-active", tool === "eraser");
  }

  // One stroke goes to the kernel as an event with its own pixels; sends keep the order of the strokes.
  let sending = Promise.resolve();
  function send(stroke) {
    const alone = document.createElement("canvas");
    renderAlone(stroke, alone, layer.width, layer.height);
    sending = sending.then(
      () =>
        new Promise((resolve) => {
          alone.toBlob(async (blob) => {
            try {
              if (blob) model.send({ event: "stroke", stroke }, undefined, [new DataView(await blob.arrayBuffer())]);
            } finally {
              resolve();  // a failed encode must not hold back the strokes after it
            }
          }, "image/png");
        }),
    );
    return sending;
  }
  const onKernelMsg = (msg) => {
    if (msg && msg.refused) {
      pending = pending.filter((s) => s.id !== msg.refused);
      replay();
    }
  };

  // Pointer input: mouse, pen and touch alike, captured so a stroke that leaves the canvas still ends.
  let current = null;
  function toNative(event) {
    const rect = live.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * live.width) / rect.width;
    const y = ((event.clientY - rect.top) * live.height) / rect.height;
    return [Math.round(x * 100) / 100, Math.round(y * 100) / 100];
  }
  function drawLive() {
    const ctx = live.getContext("2d");
    ctx.clearRect(0, 0, live.width, live.height);
    if (!current) return;
    if (current.tool === "eraser") {
      // Show what the eraser will remove: the layer minus the stroke, drawn over a hidden layer.
      ctx.drawImage(layer, 0, 0);
      drawStroke(ctx, current, scratch);
      layer.style.visibility = "hidden";
      live.style.opacity = 1;
    } else {
      drawStroke(ctx, { ...current, opacity: 1 }, scratch);
      live.style.opacity = current.opacity;
    }
  }
  function onDown(event) {
    if (event.button !== undefined && event.button !== 0) return;
    event.preventDefault();
    live.setPointerCapture(event.pointerId);
    current = {
      id: strokeId(),
      tool: model.get("tool") === "eraser" ? "eraser" : "brush",
      color: model.get("color"),
      size: Number(model.get("brush_size")),
      opacity: Number(model.get("opacity")),
      points: [toNative(event)],
    };
    drawLive();
  }
  function onMove(event) {
    if (!current) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) current.points.push(toNative(e));
    drawLive();
  }
  function onUp(event) {
    if (!current) return;
    if (event.type === "pointerup") current.points.push(toNative(event));
    const stroke = current;
    current = null;
    layer.style.visibility = "";
    drawLive();
    if (live.hasPointerCapture(event.pointerId)) live.releasePointerCapture(event.pointerId);
    pending.push(stroke);
    replay();
    send(stroke);
  }
  live.addEventListener("pointerdown", onDown);
  live.addEventListener("pointermove", onMove);
  live.addEventListener("pointerup", onUp);
  live.addEventListener("pointercancel", onUp);

  // Undo and redo work on whole strokes (one batch = one pointer-down..up), as in drawdata; the history is
  // shared, so Undo takes back the newest stroke whoever drew it. Clear is a stroke too, so it can be undone.
  const event = (name, extra = {}) => sending.then(() => model.send({ event: name, ...extra }));
  undoBtn.addEventListener("click", () => event("undo"));
  redoBtn.addEventListener("click", () => event("redo"));
  clearBtn.addEventListener("click", () => {
    if ((model.get("strokes") || []).length || pending.length) event("clear", { id: strokeId() });
  });
  const setTrait = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };
  brushBtn.addEventListener("click", () => setTrait("tool", "brush"));
  eraserBtn.addEventListener("click", () => setTrait("tool", "eraser"));
  color.addEventListener("input", () => setTrait("color", color.value));
  size.addEventListener("input", () => setTrait("brush_size", Number(size.value)));
  opacity.addEventListener("input", () => setTrait("opacity", Number(opacity.value)));

  const handlers = [
    ["change:image", showImage],
    ["change:width change:height change:strokes change:undone", replay],
    ["change:edited change:busy change:show_edited", showEdited],
    ["change:error", showError],
    ["change:color change:brush_size change:opacity change:tool", showTools],
    ["change:swatches", showSwatches],
  ];
  for (const [name, fn] of handlers) model.on(name, fn);
  model.on("msg:custom", onKernelMsg);
  showImage();
  replay();
  showEdited();
  showError();
  showTools();
  showSwatches();

  return () => {
    for (const [name, fn] of handlers) model.off(name, fn);
    model.off("msg:custom", onKernelMsg);
    for (const url of [...urls]) forget(url);
  };
}

export default { render };
