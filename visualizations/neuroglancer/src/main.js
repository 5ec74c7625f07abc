// NeuroStation's Neuroglancer client. Two ways in:
//  - Galaxy visualization plugin: Galaxy injects this module into the plugin iframe with
//    <div id="app" data-incoming='{"root": ..., "visualization_config": {"dataset_id": ...}}'>;
//    the view of that dataset is built here (no URL-hash state, no Python server).
//  - standalone page (public/index.html, for `neurostation view --serve`): the state is the URL hash.
import "neuroglancer";
import { StatusMessage } from "neuroglancer/unstable/status.js";
import { setDefaultInputEventBindings } from "neuroglancer/unstable/ui/default_input_event_bindings.js";
import { makeDefaultViewer } from "neuroglancer/unstable/ui/default_viewer.js";
import { setupDefaultViewer } from "neuroglancer/unstable/ui/default_viewer_setup.js";

// Schemes Neuroglancer reads directly; a reference to anything else (file://, a cloud-files
// alias) cannot be opened in a browser.
const BROWSER_SCHEMES = ["http:", "https:", "s3:", "gs:"];
// Default contrast of an image layer: these percentiles of its coarsest scale, read whole when
// it has at most this many values (a pyramid's top scale is about one chunk).
const CONTRAST_PERCENTILES = [0.01, 0.99];
const CONTRAST_MAX_VALUES = 1 << 22;
const TYPED_ARRAYS = {
  uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
  uint32: Uint32Array, int32: Int32Array, float32: Float32Array,
};

function galaxyIncoming() {
  const app = document.getElementById("app");
  return app?.dataset.incoming ? JSON.parse(app.dataset.incoming) : null;
}

async function fetchOk(url) {
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin" });
  } catch (error) {
    throw new Error(`cannot read ${url} (${error.message}: unreachable, or its server does not let this page read it)`);
  }
  if (!response.ok) throw new Error(`cannot read ${url}: HTTP ${response.status}`);
  return response;
}

async function fetchJson(url) {
  return (await fetchOk(url)).json();
}

// The URL a precomputed source ("precomputed://<URL>" or a bare URL) reads from, checked to be
// one a browser can open; `what` names the source in the error.
function browserUrl(source, what) {
  const url = String(source).replace(/^precomputed:\/\//, "").split("|")[0];
  let scheme;
  try {
    scheme = new URL(url).protocol;
  } catch {
    scheme = undefined;
  }
  if (/^[\w+.-]+:\/\/[\w+.-]+:\/\//.test(url) && !BROWSER_SCHEMES.includes(scheme)) {
    throw new Error(`${what} is ${source}: only precomputed:// volumes can be shown here`);
  }
  if (!BROWSER_SCHEMES.includes(scheme)) {
    throw new Error(`${what} points to ${url}, which a browser cannot open`);
  }
  return url;
}

// The volume's `info` when it is reachable over HTTP (Neuroglancer reads s3:// and gs:// itself).
async function readInfo(url) {
  return /^https?:/.test(url) ? fetchJson(`${url.replace(/\/$/, "")}/info`) : undefined;
}

// numpy's default (linear) percentile of sorted values.
function percentile(sorted, q) {
  const h = (sorted.length - 1) * q;
  const i = Math.floor(h);
  const j = Math.min(i + 1, sorted.length - 1);
  return sorted[i] + (h - i) * (sorted[j] - sorted[i]);
}

// The chunk file names of a precomputed scale: <x0>-<x1>_<y0>-<y1>_<z0>-<z1>.
function chunkNames(scale) {
  const offset = scale.voxel_offset ?? [0, 0, 0];
  const [chunk] = scale.chunk_sizes;
  const ranges = [0, 1, 2].map((i) => {
    const out = [];
    for (let a = offset[i]; a < offset[i] + scale.size[i]; a += chunk[i]) {
      out.push(`${a}-${Math.min(a + chunk[i], offset[i] + scale.size[i])}`);
    }
    return out;
  });
  return ranges[0].flatMap((x) => ranges[1].flatMap((y) => ranges[2].map((z) => `${x}_${y}_${z}`)));
}

// Default contrast of an image volume: the 1st-99th percentile of its coarsest scale, whose
// raw chunks are read here (integer types widened to whole values, which is what Neuroglancer
// keeps of a range). Undefined when that scale cannot be read this way (encoded, sharded,
// too large, not over HTTP, uint64) or is constant: Neuroglancer then spans the data type's
// range.
async function defaultContrast(url, info) {
  const Values = TYPED_ARRAYS[info.data_type];
  const scale = info.scales[info.scales.length - 1];
  const count = scale.size.reduce((a, n) => a * n, info.num_channels ?? 1);
  if (!Values || scale.encoding !== "raw" || scale.sharding || count > CONTRAST_MAX_VALUES ||
      !/^https?:/.test(url)) {
    return undefined;
  }
  const base = `${url.replace(/\/$/, "")}/${scale.key}`;
  // Raw chunks are little-endian, as typed arrays are on every platform browsers run on.
  const chunks = await Promise.all(
    chunkNames(scale).map(async (name) => new Values(await (await fetchOk(`${base}/${name}`)).arrayBuffer())));
  const values = new Values(chunks.reduce((n, chunk) => n + chunk.length, 0));
  chunks.reduce((offset, chunk) => (values.set(chunk, offset), offset + chunk.length), 0);
  const sorted = values.filter((v) => !Number.isNaN(v)).sort();
  if (sorted.length === 0) return undefined;
  let [lo, hi] = CONTRAST_PERCENTILES.map((q) => percentile(sorted, q));
  if (info.data_type !== "float32") [lo, hi] = [Math.floor(lo), Math.ceil(hi)];
  return hi > lo ? [lo, hi] : undefined;
}

// One layer for a volume: image (with the default contrast) or segmentation, from its `info`.
async function volumeLayer(name, url, info) {
  const layer = { source: `precomputed://${url}`, name };
  if (!info) return layer;
  layer.type = info.type === "segmentation" ? "segmentation" : "image";
  if (layer.type === "image") await addDefaultContrast(layer, url, info);
  return layer;
}

async function addDefaultContrast(layer, url, info) {
  let range;
  try {
    range = await defaultContrast(url, info);
  } catch (error) {
    console.warn(`NeuroStation viewer: no default contrast for ${layer.name}: ${error.message}`);
  }
  if (range) layer.shaderControls = { ...layer.shaderControls, normalized: { range } };
}

// Global axes in the finest scale's voxels (precomputed resolutions are nm), so positions
// read in voxels and the scale bar in physical units.
function dimensions(info) {
  const { resolution } = info.scales[0];
  return Object.fromEntries(["x", "y", "z"].map((axis, i) => [axis, [resolution[i] / 1e9, "m"]]));
}

// Zoom (voxels of the finest axis per screen pixel) that fits the volume's largest physical
// extent into a slice panel of about 300 pixels (a quarter of the plugin in Galaxy's centre panel); Neuroglancer centres the view on the data.
function fittedZoom(info) {
  const { size, resolution } = info.scales[0];
  const extent = Math.max(...size.map((n, i) => n * resolution[i]));
  return extent / Math.min(...resolution) / 300;
}

// The viewer state for one volume: one layer, four panels, physical axes when `info` is known.
function volumeState(layer, info) {
  const state = {
    layers: [layer],
    selectedLayer: { layer: layer.name },
    layout: "4panel",
    crossSectionBackgroundColor: "#000000",
  };
  if (info) Object.assign(state, { dimensions: dimensions(info), crossSectionScale: fittedZoom(info) });
  return state;
}

// A saved Neuroglancer state (has "layers"; e.g. written by the "Make viewer link" tool): each
// layer's source must be one a browser can open, and a precomputed one over HTTP must answer
// for its `info` (a clear error now rather than a silent empty layer); image layers without a
// contrast get the default one.
async function savedState(state, datasetName) {
  if (!Array.isArray(state.layers) || state.layers.length === 0) {
    throw new Error(`${datasetName} is a viewer state without layers`);
  }
  for (const [index, layer] of state.layers.entries()) {
    const what = `layer "${layer?.name ?? index + 1}" of ${datasetName}`;
    const sources = [layer?.source].flat().map((s) => (typeof s === "object" && s ? s.url : s));
    if (sources.length === 0 || sources.some((s) => typeof s !== "string")) {
      throw new Error(`${what} has no source URL`);
    }
    for (const source of sources) {
      const url = browserUrl(source, what);
      let info;
      try {
        info = await readInfo(url);
      } catch (error) {
        throw new Error(`${what}: ${error.message}`);
      }
      if (info && layer.type === "image" && layer.shaderControls?.normalized?.range === undefined) {
        await addDefaultContrast(layer, url, info);
      }
    }
  }
  return state;
}

// The state for a dataset: a precomputed directory dataset is streamed from Galaxy itself (it
// serves the dataset's files at /datasets/<id>/display/<path>); a JSON dataset is either a saved
// viewer state (restored) or a volume reference ({"url": ...}, opened at its own URL).
async function datasetState(root, datasetId) {
  const dataset = await fetchJson(new URL(`api/datasets/${datasetId}`, root));
  if (dataset.extension !== "json") {
    const url = new URL(`datasets/${datasetId}/display`, root).href;
    const info = await readInfo(url);
    return volumeState(await volumeLayer(dataset.name, url, info), info);
  }
  const content = await fetchJson(new URL(`api/datasets/${datasetId}/display?preview=false`, root));
  if (typeof content === "object" && content !== null && "layers" in content) {
    return savedState(content, dataset.name);
  }
  if (typeof content?.url !== "string" || !content.url) {
    throw new Error(`${dataset.name} is neither a volume reference ({"url": ...}) nor a viewer state ({"layers": [...]})`);
  }
  const url = browserUrl(content.url, dataset.name);
  const info = await readInfo(url);
  return volumeState(await volumeLayer(dataset.name, url, info), info);
}

async function showGalaxyDataset(incoming) {
  document.documentElement.style.height = document.body.style.height = "100%";
  document.body.style.margin = "0";
  const viewer = (window.viewer = makeDefaultViewer());
  setDefaultInputEventBindings(viewer.inputEventBindings);
  try {
    const root = new URL(incoming.root ?? "/", window.location.href);
    const datasetId = incoming.visualization_config?.dataset_id;
    if (!datasetId) throw new Error("Galaxy gave no dataset_id");
    viewer.state.restoreState(await datasetState(root, datasetId));
  } catch (error) {
    new StatusMessage().setErrorMessage(`NeuroStation viewer: ${error.message}`);
    throw error;
  }
}

const incoming = galaxyIncoming();
if (incoming) {
  showGalaxyDataset(incoming);
} else {
  setupDefaultViewer();
}
