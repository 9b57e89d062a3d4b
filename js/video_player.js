// VideoPlayer: plays mp4 bytes from the kernel in a <video>.
//
// Model traits (see ivwidgets/player.py):
//   value (bytes, mp4 H.264), fps, num_frames, frame (index shown; synced both ways),
//   playing, loop, speed, filename (of the download link), error.
//
// A blob URL (not a data URL) feeds the <video>, so large videos do not sit in the DOM as base64.

function bytesOf(value) {
  if (!value) return null;
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

function render({ model, el: root }) {
  root.classList.add("ivw", "ivw-player");
  const video = el("video", { playsInline: true, muted: true, preload: "auto" });
  video.muted = true;
  const playBtn = el("button", { className: "ivw-play", textContent: "Play" });
  const scrub = el("input", { type: "range", min: 0, max: 0, step: 1, value: 0, className: "ivw-scrub", title: "frame" });
  const label = el("span", { className: "ivw-frame-label" });
  const speed = el("select", { className: "ivw-speed", title: "speed" },
    [0.25, 0.5, 1, 2, 4].map((s) => el("option", { value: String(s), textContent: `${s}\u00d7` })));
  const loop = el("input", { type: "checkbox", className: "ivw-loop" });
  const loopLabel = el("label", {}, [loop, " loop"]);
  const download = el("a", { className: "ivw-download", textContent: "Download" });
  const empty = el("div", { className: "ivw-empty", textContent: "No video yet." });
  const error = el("div", { className: "ivw-error", role: "alert" });
  const toolbar = el("div", { className: "ivw-toolbar" }, [playBtn, scrub, label, speed, loopLabel, download]);
  root.append(video, empty, toolbar, error);

  let url = null;
  const fps = () => Number(model.get("fps")) || 8;
  const frames = () => Math.max(1, Number(model.get("num_frames")) || Math.round((video.duration || 0) * fps()) || 1);
  const frameAt = (t) => Math.min(frames() - 1, Math.max(0, Math.floor(t * fps() + 1e-3)));

  function load() {
    const bytes = bytesOf(model.get("value"));
    if (url) URL.revokeObjectURL(url);
    url = null;
    if (bytes && bytes.byteLength) {
      url = URL.createObjectURL(new Blob([bytes], { type: "video/mp4" }));
      video.src = url;
      download.href = url;
      download.download = model.get("filename") || "video.mp4";
      video.load();
    } else {
      video.removeAttribute("src");
      download.removeAttribute("href");
    }
    const has = !!url;
    video.style.display = has ? "" : "none";
    empty.style.display = has ? "none" : "";
    toolbar.style.visibility = has ? "" : "hidden";
    scrub.max = String(frames() - 1);
    syncPlaying();
  }

  // The frame index is written to the model while playing; a change that comes from the kernel seeks.
  let reported = model.get("frame");
  function report() {
    const f = frameAt(video.currentTime);
    scrub.value = String(f);
    label.textContent = `${f + 1} / ${frames()}`;
    if (f !== reported) {
      reported = f;
      model.set("frame", f);
      model.save_changes();
    }
  }
  function seek() {
    const f = Number(model.get("frame")) || 0;
    if (f === reported) return;
    reported = f;
    video.currentTime = (f + 0.5) / fps();
    scrub.value = String(f);
    label.textContent = `${f + 1} / ${frames()}`;
  }
  let vfc = null;
  function onFrame() {
    report();
    if (video.requestVideoFrameCallback) vfc = video.requestVideoFrameCallback(onFrame);
  }
  if (video.requestVideoFrameCallback) vfc = video.requestVideoFrameCallback(onFrame);
  video.addEventListener("timeupdate", report);
  video.addEventListener("seeked", report);
  video.addEventListener("loadedmetadata", () => { scrub.max = String(frames() - 1); report(); });
  video.addEventListener("ended", () => { if (!video.loop) { model.set("playing", false); model.save_changes(); } });

  function syncPlaying() {
    const playing = !!model.get("playing");
    playBtn.textContent = playing ? "Pause" : "Play";
    if (!url) return;
    if (playing && video.paused) video.play().catch(() => {});
    if (!playing && !video.paused) video.pause();
  }
  function syncOptions() {
    video.loop = !!model.get("loop");
    loop.checked = video.loop;
    const s = Number(model.get("speed")) || 1;
    video.playbackRate = s;
    video.defaultPlaybackRate = s;
    speed.value = String(s);
    download.download = model.get("filename") || "video.mp4";
  }
  function showError() {
    const msg = model.get("error") || "";
    error.textContent = msg;
    error.style.display = msg ? "block" : "none";
  }
  video.addEventListener("error", () => {
    const code = video.error ? video.error.code : "?";
    error.textContent = `This browser cannot play the video (media error ${code}).`;
    error.style.display = "block";
  });

  const set = (name, value) => { model.set(name, value); model.save_changes(); };
  playBtn.addEventListener("click", () => set("playing", !model.get("playing")));
  scrub.addEventListener("input", () => {
    set("playing", false);
    set("frame", Number(scrub.value));
  });
  speed.addEventListener("change", () => set("speed", Number(speed.value)));
  loop.addEventListener("change", () => set("loop", loop.checked));

  const handlers = [
    ["change:value", load],
    ["change:frame", seek],
    ["change:playing", syncPlaying],
    ["change:loop change:speed change:filename", syncOptions],
    ["change:fps change:num_frames", () => { scrub.max = String(frames() - 1); }],
    ["change:error", showError],
  ];
  for (const [name, fn] of handlers) model.on(name, fn);
  syncOptions();
  load();
  showError();

  return () => {
    for (const [name, fn] of handlers) model.off(name, fn);
    if (vfc !== null && video.cancelVideoFrameCallback) video.cancelVideoFrameCallback(vfc);
    video.pause();
    if (url) URL.revokeObjectURL(url);
  };
}

export default { render };
