// fastnst in the browser: the exported style models on ONNX Runtime Web (WebGPU where the
// browser has it, else WebAssembly). models.json (from fastnst-web) lists the models; a
// multi-style model also takes `style_weights`, one float per style of its `styles`.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], sessions: new Map(), image: null, camera: null, busy: false };
ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;  // served by fastnst-web
// Every core up to 4 (ONNX Runtime's own default takes half of them); threads need the page to
// be cross-origin isolated, which fastnst-web's headers make it.
ort.env.wasm.numThreads = crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

function say(text, kind = "done") {
  $("status").textContent = text;
  document.body.dataset.state = kind;
}

function fail(text) {
  say(text, "error");
  throw new Error(text);
}

async function providers() {
  return ("gpu" in navigator && (await navigator.gpu.requestAdapter().catch(() => null)))
    ? ["webgpu", "wasm"] : ["wasm"];
}

async function session(model) {
  if (!state.sessions.has(model.url)) {
    const made = ort.InferenceSession.create(model.url, { executionProviders: await providers() })
      .catch((e) => { state.sessions.delete(model.url); throw e; });
    state.sessions.set(model.url, made);
  }
  try {
    return await state.sessions.get(model.url);
  } catch (e) {
    return fail(`The model ${model.name} failed to load: ${e.message || e}`);
  }
}

// The chosen model and its style weights (null for a one-style model).
function choice() {
  const [kind, name] = $("style").value.split(":");
  if (kind === "model") return { model: state.models.find((m) => m.name === name), weights: null };
  const model = state.models.find((m) => m.styles.length);
  const weights = new Float32Array(model.styles.length);
  const t = Number($("blend").value) / 100;
  weights[model.styles.indexOf(name)] += 1 - t;
  weights[model.styles.indexOf($("style-b").value)] += t;
  return { model, weights };
}

function label() {
  const [kind, name] = $("style").value.split(":");
  const t = Number($("blend").value);
  return kind === "multi" && t > 0 ? `${name} ${100 - t}% + ${$("style-b").value} ${t}%` : name;
}

// Pixels of a canvas as the model's input: (1, 3, H, W) float32 RGB in [0, 1].
function tensorOf(canvas) {
  const { width: w, height: h } = canvas;
  const rgba = canvas.getContext("2d").getImageData(0, 0, w, h).data;
  const data = new Float32Array(3 * w * h);
  for (let i = 0; i < w * h; i++) {
    data[i] = rgba[4 * i] / 255;
    data[w * h + i] = rgba[4 * i + 1] / 255;
    data[2 * w * h + i] = rgba[4 * i + 2] / 255;
  }
  return new ort.Tensor("float32", data, [1, 3, h, w]);
}

function draw(tensor, canvas) {
  const [, , h, w] = tensor.dims;
  const out = tensor.data;
  canvas.width = w;
  canvas.height = h;
  const image = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) {
      image.data[4 * i + c] = Math.round(Math.min(1, Math.max(0, out[c * w * h + i])) * 255);
    }
    image.data[4 * i + 3] = 255;
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}

// Draw `source` (an image, a bitmap or the video) into the photo canvas, long side at most
// the chosen size.
function show(source, width, height) {
  const limit = Math.max(16, Number($("max-size").value) || 640);
  const scale = Math.min(1, limit / Math.max(width, height));
  const canvas = $("source");
  canvas.width = Math.max(5, Math.round(width * scale));
  canvas.height = Math.max(5, Math.round(height * scale));
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
}

async function stylize() {
  const { model, weights } = choice();
  const s = await session(model);
  const feeds = { image: tensorOf($("source")) };
  if (weights) feeds.style_weights = new ort.Tensor("float32", weights, [weights.length]);
  const start = performance.now();
  const out = (await s.run(feeds)).stylized;
  draw(out, $("result"));
  return performance.now() - start;
}

// One run at a time (an ONNX Runtime session runs one call at once): a change while a photo
// is being stylized runs it again, with the newest settings, when that run ends.
async function stylizePhoto() {
  if (!state.image || state.camera) return;
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  try {
    do {
      state.again = false;
      say(`Stylizing with ${label()}…`, "busy");
      show(state.image, state.image.width, state.image.height);
      const ms = await stylize();
      $("result-caption").textContent = `${label()}, ${ms.toFixed(0)} ms`;
      if (!state.again) {
        say(`Done: ${label()} in ${ms.toFixed(0)} ms (${$("source").width}x${$("source").height}).`);
      }
    } while (state.again);
  } catch (e) {
    if (document.body.dataset.state !== "error") say(`Stylizing failed: ${e.message || e}`, "error");
  } finally {
    state.busy = false;
  }
}

async function openPhoto(file) {
  try {
    state.image = await createImageBitmap(file);
  } catch (e) {
    state.image = null;
    return say(`${file.name}: cannot be decoded as an image (${e.message || e}).`, "error");
  }
  await stylizePhoto();
}

async function webcam() {
  if (state.camera) {
    state.camera.getTracks().forEach((t) => t.stop());
    state.camera = null;
    $("webcam").textContent = "Start the webcam";
    return say("Webcam stopped.");
  }
  try {
    state.camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (e) {
    return say(`Webcam: no camera, or no permission to use it (${e.name || e}).`, "error");
  }
  $("webcam").textContent = "Stop the webcam";
  const video = $("camera");
  video.srcObject = state.camera;
  await video.play();
  while (state.busy) await new Promise(requestAnimationFrame);  // a photo's run ends first
  const shown = [];
  while (state.camera) {  // one frame at a time: the rate is what is shown
    show(video, video.videoWidth, video.videoHeight);
    try {
      await stylize();
    } catch (e) {
      if (document.body.dataset.state !== "error") say(`Stylizing failed: ${e.message || e}`, "error");
      break;
    }
    const now = performance.now();
    shown.push(now);
    while (shown[0] < now - 1000) shown.shift();
    $("result-caption").textContent = `${label()}, ${shown.length} frames/s`;
    say(`Webcam: ${label()}, ${shown.length} frames/s shown.`);
    await new Promise(requestAnimationFrame);
  }
}

// Median ms of `runs` runs of `name` on a random w x h image (scripts/bench_web.py).
async function bench(name, w, h, runs = 10) {
  const model = state.models.find((m) => m.name === name);
  const s = await session(model);
  const data = Float32Array.from({ length: 3 * w * h }, Math.random);
  const feeds = { image: new ort.Tensor("float32", data, [1, 3, h, w]) };
  if (model.styles.length) {
    const weights = new Float32Array(model.styles.length);
    weights[0] = 1;
    feeds.style_weights = new ort.Tensor("float32", weights, [weights.length]);
  }
  await s.run(feeds);  // warm-up
  const times = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await s.run(feeds);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

async function main() {
  let index;
  try {
    const response = await fetch("models.json");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    index = await response.json();
  } catch (e) {
    return say(`Cannot list the models (${e.message || e}); is fastnst-web running?`, "error");
  }
  state.models = index.models;
  for (const m of state.models) {
    const options = m.styles.length ? m.styles.map((s) => [`multi:${s}`, `${s} (multi-style)`])
      : [[`model:${m.name}`, m.name]];
    for (const [value, text] of options) $("style").add(new Option(text, value));
    for (const s of m.styles) $("style-b").add(new Option(s, s));
  }
  if (!state.models.length) return say("No models to show.", "error");
  // A multi-style model offered alone starts on its newest style, as `--style FILE` does.
  const [only] = state.models;
  if (state.models.length === 1 && only.styles.length) {
    $("style").value = `multi:${only.styles[only.styles.length - 1]}`;
    $("blend-controls").hidden = false;
  }
  $("style").addEventListener("change", () => {
    $("blend-controls").hidden = !$("style").value.startsWith("multi:");
    stylizePhoto();
  });
  $("style-b").addEventListener("change", stylizePhoto);
  $("blend").addEventListener("input", () => {
    $("blend-value").textContent = `${$("blend").value}%`;
  });
  $("blend").addEventListener("change", stylizePhoto);
  $("max-size").addEventListener("change", stylizePhoto);
  $("photo").addEventListener("change", (e) => e.target.files[0] && openPhoto(e.target.files[0]));
  $("webcam").addEventListener("click", webcam);
  window.fastnst = { bench, stylizePhoto, models: state.models };
  say(`Ready: ${state.models.length} models. Pick a photo or start the webcam.`, "ready");
}

main();
