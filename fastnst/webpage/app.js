// fastnst in the browser: the exported style models on ONNX Runtime Web (WebGPU where the
// browser has it, else WebAssembly). models.json (from fastnst-web) lists the models; a
// multi-style model also takes `style_weights`, one float per style of its `styles`. Its
// `painter`, when there is one, takes any painting as a second input, `painting`.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  models: [], sessions: new Map(), image: null, camera: null, busy: false, stroke: null,
  painter: null, painting: null,  // the painter's graph, and the painting dropped: { name, tensor }
};
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
  if (kind === "painting") return { model: state.painter, weights: null };
  const model = state.models.find((m) => m.styles.length);
  const weights = new Float32Array(model.styles.length);
  const t = Number($("blend").value) / 100;
  weights[model.styles.indexOf(name)] += 1 - t;
  weights[model.styles.indexOf($("style-b").value)] += t;
  return { model, weights };
}

function label() {
  const [kind] = $("style").value.split(":");
  const name = $("style").value.slice(kind.length + 1);
  const t = Number($("blend").value);
  const stroke = Number($("stroke").value) === 1 ? "" : `, stroke ${$("stroke").value}`;
  return (kind === "multi" && t > 0 ? `${name} ${100 - t}% + ${$("style-b").value} ${t}%` : name) + stroke;
}

// Pixels of a canvas: { w, h, rgba }.
function pixels(canvas) {
  const { width: w, height: h } = canvas;
  return { w, h, rgba: canvas.getContext("2d").getImageData(0, 0, w, h).data };
}

// Pixels as the model's input: (1, 3, H, W) float32 RGB in [0, 1], mirrored out by `border`
// pixels on each side (OpenCV's BORDER_REFLECT_101, as fastnst/upsample.py pads).
function tensorOf({ w, h, rgba }, border = 0) {
  const W = w + 2 * border, H = h + 2 * border;
  const mirror = (i, n) => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
  const data = new Float32Array(3 * W * H);
  for (let y = 0; y < H; y++) {
    const sy = mirror(y - border, h);
    for (let x = 0; x < W; x++) {
      const j = 4 * (sy * w + mirror(x - border, w)), i = y * W + x;
      data[i] = rgba[j] / 255;
      data[W * H + i] = rgba[j + 1] / 255;
      data[2 * W * H + i] = rgba[j + 2] / 255;
    }
  }
  return new ort.Tensor("float32", data, [1, 3, H, W]);
}

// The model's output (1, 3, H, W) without `border` pixels a side: three w x h planes.
function planesOf(tensor, border = 0) {
  const [, , H, W] = tensor.dims;
  const w = W - 2 * border, h = H - 2 * border;
  const planes = [0, 1, 2].map(() => new Float32Array(w * h));
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < h; y++) {
      const row = c * W * H + (y + border) * W + border;
      planes[c].set(tensor.data.subarray(row, row + w), y * w);
    }
  }
  return { w, h, planes };
}

function draw({ w, h, planes }, canvas) {
  canvas.width = w;
  canvas.height = h;
  const image = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) {
      image.data[4 * i + c] = Math.round(Math.min(1, Math.max(0, planes[c][i])) * 255);
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

// The stroke path, as fastnst/upsample.py does it (its constants come in models.json): paint
// at a working size set by the stroke, then enlarge with the photo's own fine detail.
function workingSide(w, h, stroke) {
  const S = state.stroke;
  if (!stroke || !S) return null;
  const long = Math.max(w, h), short = Math.max(1, Math.min(w, h));
  const side = Math.max(Math.round(S.side / stroke), Math.ceil(S.min_short_side * long / short));
  return side < long ? side : null;
}

function greyOf({ w, h, rgba }) {
  const [r, g, b] = state.stroke.luma;
  const grey = new Float32Array(w * h);
  for (let i = 0; i < w * h; i++) grey[i] = (r * rgba[4 * i] + g * rgba[4 * i + 1] + b * rgba[4 * i + 2]) / 255;
  return grey;
}

// Mean over (2 radius + 1)^2 windows, mirrored at the edges (BORDER_REFLECT).
function box(x, w, h) {
  const r = state.stroke.radius;
  const mirror = (i, n) => (i < 0 ? -i - 1 : i >= n ? 2 * n - i - 1 : i);
  const rows = new Float32Array(w * h), out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < w; xx++) {
      let sum = 0;
      for (let k = -r; k <= r; k++) sum += x[y * w + mirror(xx + k, w)];
      rows[y * w + xx] = sum;
    }
  }
  const n = (2 * r + 1) ** 2;
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < w; xx++) {
      let sum = 0;
      for (let k = -r; k <= r; k++) sum += rows[mirror(y + k, h) * w + xx];
      out[y * w + xx] = sum / n;
    }
  }
  return out;
}

// How much the result follows the photo's luminance (a guided-filter slope), in [min_gain, max_gain].
function detailGain(photo, result, w, h) {
  const { eps, min_gain: low, max_gain: top } = state.stroke;
  const product = (a, b) => a.map((v, i) => v * b[i]);
  const mi = box(photo, w, h), mp = box(result, w, h);
  const ii = box(product(photo, photo), w, h), ip = box(product(photo, result), w, h);
  const slope = mi.map((m, i) => (ip[i] - m * mp[i]) / (ii[i] - m * m + eps));
  return box(slope, w, h).map((g) => Math.min(top, Math.max(low, g)));
}

// Resampling a w x h plane to W x H, separably: `taps` weights of a source coordinate.
function resample(x, w, h, W, H, taps) {
  const axis = (n, N) => Array.from({ length: N }, (_, i) => taps((i + 0.5) * n / N - 0.5, n));
  const across = axis(w, W), down = axis(h, H);
  const rows = new Float32Array(W * h), out = new Float32Array(W * H);
  for (let y = 0; y < h; y++) {
    for (let i = 0; i < W; i++) {
      let sum = 0;
      for (const [j, weight] of across[i]) sum += weight * x[y * w + j];
      rows[y * W + i] = sum;
    }
  }
  for (let i = 0; i < H; i++) {
    for (let xx = 0; xx < W; xx++) {
      let sum = 0;
      for (const [j, weight] of down[i]) sum += weight * rows[j * W + xx];
      out[i * W + xx] = sum;
    }
  }
  return out;
}

const clampIndex = (j, n) => Math.min(n - 1, Math.max(0, j));

function linear(s, n) {  // OpenCV's INTER_LINEAR
  const j = Math.floor(s), t = s - j;
  return [[clampIndex(j, n), 1 - t], [clampIndex(j + 1, n), t]];
}

function cubic(s, n) {  // OpenCV's INTER_CUBIC (a = -0.75)
  const a = -0.75, j = Math.floor(s), t = s - j;
  const near = (d) => ((a + 2) * d - (a + 3)) * d * d + 1;
  const far = (d) => ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
  return [[j - 1, far(t + 1)], [j, near(t)], [j + 1, near(1 - t)], [j + 2, far(2 - t)]]
    .map(([k, weight]) => [clampIndex(k, n), weight]);
}

// The working-size result at the photo's size: bicubic, plus gain x the photo's detail.
function enlarge(result, photo, small) {
  const { w, h } = result, { w: W, h: H } = photo;
  const smallGrey = greyOf(small);
  const [r, g, b] = state.stroke.luma;
  const resultGrey = result.planes[0].map((v, i) => r * v + g * result.planes[1][i] + b * result.planes[2][i]);
  const gain = resample(detailGain(smallGrey, resultGrey, w, h), w, h, W, H, linear);
  const base = resample(smallGrey, w, h, W, H, linear);
  const grey = greyOf(photo);
  const detail = grey.map((v, i) => (v - base[i]) * gain[i]);
  return { w: W, h: H, planes: result.planes.map((p) => resample(p, w, h, W, H, cubic).map((v, i) => v + detail[i])) };
}

async function stylize() {
  const { model, weights } = choice();
  const s = await session(model);
  const photo = pixels($("source"));
  const side = workingSide(photo.w, photo.h, Number($("stroke").value));
  let small = photo, border = 0;
  if (side) {
    const scale = side / Math.max(photo.w, photo.h);
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(photo.w * scale));
    canvas.height = Math.max(1, Math.round(photo.h * scale));
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage($("source"), 0, 0, canvas.width, canvas.height);
    small = pixels(canvas);
    border = state.stroke.border;
  }
  const feeds = { image: tensorOf(small, border) };
  if (weights) feeds.style_weights = new ort.Tensor("float32", weights, [weights.length]);
  if (model === state.painter) feeds.painting = state.painting.tensor;
  const start = performance.now();
  const painted = planesOf((await s.run(feeds)).stylized, border);
  draw(side ? enlarge(painted, photo, small) : painted, $("result"));
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

// A painting to paint with: shrunk to the painter's side (its strokes are taken at that
// scale, as fastnst does), offered and chosen in the style list.
async function openPainting(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (e) {
    return say(`${file.name}: cannot be decoded as an image (${e.message || e}).`, "error");
  }
  const scale = Math.min(1, state.painter.side / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(8, Math.round(bitmap.width * scale));
  canvas.height = Math.max(8, Math.round(bitmap.height * scale));
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  state.painting = { name: file.name, tensor: tensorOf(pixels(canvas)) };
  const value = `painting:${file.name}`;
  for (const option of [...$("style").options]) {
    if (option.value.startsWith("painting:")) option.remove();
  }
  $("style").add(new Option(`${file.name} (painting)`, value));
  $("style").value = value;
  $("blend-controls").hidden = true;
  if (state.image || state.camera) return stylizePhoto();
  say(`Painting ${file.name} ready: pick a photo or start the webcam.`, "ready");
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

// Median ms of `runs` runs of `name` on a random w x h image (scripts/bench_web.py); the
// painter's ("painting") with a random painting of its side.
async function bench(name, w, h, runs = 10) {
  const model = name === "painting" ? state.painter : state.models.find((m) => m.name === name);
  const s = await session(model);
  const data = Float32Array.from({ length: 3 * w * h }, Math.random);
  const feeds = { image: new ort.Tensor("float32", data, [1, 3, h, w]) };
  if (model.styles.length) {
    const weights = new Float32Array(model.styles.length);
    weights[0] = 1;
    feeds.style_weights = new ort.Tensor("float32", weights, [weights.length]);
  }
  if (model === state.painter) {
    const side = state.painter.side, data = Float32Array.from({ length: 3 * side * side }, Math.random);
    feeds.painting = new ort.Tensor("float32", data, [1, 3, side, side]);
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
  state.stroke = index.stroke;
  state.painter = index.painter;
  $("painting-control").hidden = !state.painter;
  const [low, high] = state.stroke.range;
  Object.assign($("stroke"), { min: 0, max: high, step: 0.05 });
  $("stroke").addEventListener("input", () => {
    const value = Number($("stroke").value);
    if (value > 0 && value < low) $("stroke").value = low;  // 0: the network's own size
    $("stroke-value").textContent = Number($("stroke").value) ? $("stroke").value : "native";
  });
  $("stroke").addEventListener("change", stylizePhoto);
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
  $("painting").addEventListener("change", (e) => e.target.files[0] && openPainting(e.target.files[0]));
  $("webcam").addEventListener("click", webcam);
  window.fastnst = { bench, stylizePhoto, models: state.models };
  say(`Ready: ${state.models.length} models. Pick a photo or start the webcam.`, "ready");
}

main();
