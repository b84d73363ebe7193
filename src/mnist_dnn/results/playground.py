"""metrics/playground.html: draw a digit and see each variant's prediction, computed in the page from the trained
weights (embedded, float32), offline. The drawing goes through predict's preprocessing (tools/predict.to_mnist), in
JavaScript: ink found against the paper, fit in 20×20 (Lanczos), centred by mass in 28×28."""

import base64
import json

from markupsafe import Markup
from torch import nn

from mnist_dnn.results.html_report import render

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>MNIST: draw a digit</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; max-width: 60rem; }
#pad { border: 1px solid #888; touch-action: none; cursor: crosshair; background: #fff; }
#input { border: 1px solid #888; image-rendering: pixelated; width: 112px; height: 112px; background: #000; }
table { border-collapse: collapse; margin-top: 1rem; } td, th { padding: .2rem .5rem; text-align: right; }
td.best { font-weight: bold; background: #e8f0fe; } .row { display: flex; gap: 1.5rem; align-items: flex-start; }
</style></head><body>
<h1>Draw a digit</h1>
<p>Draw one digit, 0 to 9, with the mouse or a finger. Each of the lecture's variants predicts it here, from the
weights that this run trained (computed in this page, offline); the small square is what they see: the drawing as
<code>mnist-dnn predict</code> prepares an image, 28 × 28 pixels. <a href="report.html">Back to the report</a>.</p>
<div class="row">
<div><canvas id="pad" width="280" height="280"></canvas><br><button id="clear">Clear</button></div>
<div><canvas id="input" width="28" height="28"></canvas><p id="status">Draw a digit.</p></div>
</div>
<table id="predictions"><thead><tr><th>variant</th><th>prediction</th>
{% for digit in range(10) %}<th>{{ digit }}</th>{% endfor %}</tr></thead><tbody></tbody></table>
<script type="application/json" id="weights">{{ weights }}</script>
<script>{{ script }}</script>
</body></html>
"""

SCRIPT = r"""
"use strict";
const floats = (text) => new Float32Array(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer);
const MODELS = Object.entries(JSON.parse(document.getElementById("weights").textContent)).map(
  ([name, layers]) => [name, layers.map((l) => ({rows: l.out, cols: l.in, w: floats(l.w), b: floats(l.b)}))]);
const roundEven = (x) => { const r = Math.round(x); return Math.abs(x % 1) === 0.5 && r % 2 ? r - 1 : r; };
const lanczos = (x) => { if (x === 0) return 1; if (Math.abs(x) >= 3) return 0;
  const p = Math.PI * x; return (Math.sin(p) / p) * (Math.sin(p / 3) / (p / 3)); };

function resample(src, w, h, size, horizontal) {  // one pass of Pillow's Lanczos resize, to 8 bits
  const n = horizontal ? w : h, scale = n / size, filterScale = Math.max(scale, 1), support = 3 * filterScale;
  const out = new Float64Array(horizontal ? size * h : w * size);
  for (let i = 0; i < size; i++) {
    const centre = (i + 0.5) * scale, lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const hi = Math.min(Math.trunc(centre + support + 0.5), n);
    const k = []; let total = 0;
    for (let x = lo; x < hi; x++) { const v = lanczos((x - centre + 0.5) / filterScale); k.push(v); total += v; }
    for (let j = 0; j < (horizontal ? h : w); j++) {
      let sum = 0;
      for (let x = lo; x < hi; x++) sum += k[x - lo] * (horizontal ? src[j * w + x] : src[x * w + j]);
      const value = Math.min(255, Math.max(0, Math.round(sum / total)));
      if (horizontal) out[j * size + i] = value; else out[i * w + j] = value;
    }
  }
  return out;
}

function toMnist(grey, w, h) {  // tools/predict.to_mnist, step by step
  const border = [];
  for (let x = 0; x < w; x++) border.push(grey[x], grey[(h - 1) * w + x]);
  for (let y = 0; y < h; y++) border.push(grey[y * w], grey[y * w + w - 1]);
  const inverted = border.reduce((a, b) => a + b, 0) / border.length > 127;
  const flip = (v) => (inverted ? 255 - v : v);
  const sorted = border.map(flip).sort((a, b) => a - b), m = sorted.length / 2;
  const paper = sorted.length % 2 ? sorted[Math.floor(m)] : (sorted[m - 1] + sorted[m]) / 2;
  const px = Float32Array.from(grey, (v) => Math.max(flip(v) - paper, 0));
  const top = px.reduce((a, b) => Math.max(a, b), 0);
  if (top < 32) return null;
  let r0 = h, r1 = -1, c0 = w, c1 = -1;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    px[y * w + x] = Math.fround(px[y * w + x] * Math.fround(255 / top));
    if (px[y * w + x] > 64) { r0 = Math.min(r0, y); r1 = Math.max(r1, y); c0 = Math.min(c0, x); c1 = Math.max(c1, x); }
  }
  const cw = c1 - c0 + 1, ch = r1 - r0 + 1, crop = new Float64Array(cw * ch);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = Math.trunc(px[(y + r0) * w + x + c0]);
  const scale = 20 / Math.max(cw, ch);
  const nw = Math.max(1, roundEven(cw * scale)), nh = Math.max(1, roundEven(ch * scale));
  const digit = resample(resample(crop, cw, ch, nw, true), nw, ch, nh, false);
  let mass = 0, cy = 0, cx = 0;
  for (let y = 0; y < nh; y++) {
    for (let x = 0; x < nw; x++) { const v = digit[y * nw + x]; mass += v; cy += v * y; cx += v * x; }
  }
  mass = mass || 1;
  const t = Math.min(Math.max(roundEven(14 - cy / mass), 0), 28 - nh);
  const l = Math.min(Math.max(roundEven(14 - cx / mass), 0), 28 - nw);
  const image = new Uint8Array(784);
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) image[(y + t) * 28 + x + l] = digit[y * nw + x];
  return image;
}

function probabilities(layers, image) {  // Linear, ReLU, …, Linear; softmax
  let h = Float64Array.from(image, (v) => v / 255);
  layers.forEach((layer, i) => {
    const out = new Float64Array(layer.rows);
    for (let r = 0; r < layer.rows; r++) {
      let sum = layer.b[r];
      for (let c = 0, o = r * layer.cols; c < layer.cols; c++) sum += layer.w[o + c] * h[c];
      out[r] = i < layers.length - 1 ? Math.max(sum, 0) : sum;
    }
    h = out;
  });
  const top = Math.max(...h), e = h.map((v) => Math.exp(v - top)), total = e.reduce((a, b) => a + b, 0);
  return Array.from(e, (v) => v / total);
}

const pad = document.getElementById("pad"), ctx = pad.getContext("2d"), view = document.getElementById("input");
window.playground = {input: null, predictions: {}};
function clear() { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, pad.width, pad.height); update(); }
function update() {
  const rgba = ctx.getImageData(0, 0, pad.width, pad.height).data, grey = new Float64Array(pad.width * pad.height);
  for (let i = 0; i < grey.length; i++) {
    grey[i] = Math.round(0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]);  // Pillow's L
  }
  const image = toMnist(grey, pad.width, pad.height), body = document.querySelector("#predictions tbody");
  body.replaceChildren();
  window.playground = {input: image && Array.from(image), predictions: {}};
  const shown = view.getContext("2d").createImageData(28, 28);
  for (let i = 0; i < 784; i++) { const v = image ? image[i] : 0; shown.data.set([v, v, v, 255], 4 * i); }
  view.getContext("2d").putImageData(shown, 0, 0);
  document.getElementById("status").textContent = image ? "What the models see." : "Draw a digit.";
  if (!image) return;
  for (const [name, layers] of MODELS) {
    const p = probabilities(layers, image), best = p.indexOf(Math.max(...p));
    window.playground.predictions[name] = p;
    const row = body.insertRow(), cells = [name, String(best), ...p.map((v) => (100 * v).toFixed(1) + "%")];
    cells.forEach((text, i) => {
      const cell = row.insertCell();
      cell.textContent = text;
      if (i === best + 2) cell.className = "best";
    });
  }
}
let last = null;
pad.addEventListener("pointerdown", (e) => { pad.setPointerCapture(e.pointerId); last = [e.offsetX, e.offsetY]; });
pad.addEventListener("pointermove", (e) => {
  if (!last) return;
  ctx.strokeStyle = "#000"; ctx.lineWidth = 20; ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(...last); ctx.lineTo(e.offsetX, e.offsetY); ctx.stroke(); last = [e.offsetX, e.offsetY];
});
const end = () => { if (last) { last = null; update(); } };
pad.addEventListener("pointerup", end); pad.addEventListener("pointercancel", end);
document.getElementById("clear").addEventListener("click", clear);
clear();
"""


def layers_json(model):
    """The Linear layers of ``model``, in order, as the page reads them: shapes, and float32 weights in base64."""
    def encoded(tensor):
        return base64.b64encode(tensor.detach().numpy().astype("<f4").tobytes()).decode()

    return [{"out": m.out_features, "in": m.in_features, "w": encoded(m.weight), "b": encoded(m.bias)}
            for m in model.modules() if isinstance(m, nn.Linear)]


def build_playground(models):
    """The page for ``models`` (variant name → trained model, in the table's order)."""
    weights = json.dumps({name: layers_json(model) for name, model in models.items()}, separators=(",", ":"))
    # Not escaped: names are NAME_PATTERN and weights base64, so neither holds a "<" that could end the script.
    return render(PAGE, weights=Markup(weights.replace("<", "\\u003c")), script=Markup(SCRIPT))
