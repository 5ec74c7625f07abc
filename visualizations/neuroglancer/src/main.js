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

function galaxyIncoming() {
  const app = document.getElementById("app");
  return app?.dataset.incoming ? JSON.parse(app.dataset.incoming) : null;
}

async function fetchJson(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`cannot read ${url}: HTTP ${response.status}`);
  return response.json();
}

// Where a dataset's volume is: a precomputed directory dataset is streamed from Galaxy itself
// (it serves the dataset's files at /datasets/<id>/display/<path>); a JSON reference
// ({"url": ...}) is opened at its own URL.
async function locateVolume(root, datasetId) {
  const dataset = await fetchJson(new URL(`api/datasets/${datasetId}`, root));
  if (dataset.extension !== "json") {
    return { name: dataset.name, url: new URL(`datasets/${datasetId}/display`, root).href };
  }
  const reference = await fetchJson(new URL(`api/datasets/${datasetId}/display?preview=false`, root));
  const url = typeof reference?.url === "string" ? reference.url : "";
  if (!url) throw new Error(`${dataset.name} is not a volume reference: it has no "url"`);
  if (!BROWSER_SCHEMES.includes(new URL(url).protocol)) {
    throw new Error(`${dataset.name} points to ${url}, which a browser cannot open`);
  }
  return { name: dataset.name, url };
}

// The volume's `info` when it is reachable over HTTP (Neuroglancer reads s3:// and gs:// itself).
async function readInfo(url) {
  return /^https?:/.test(url) ? fetchJson(`${url.replace(/\/$/, "")}/info`) : undefined;
}

// Global axes in the finest scale's voxels (precomputed resolutions are nm), so positions
// read in voxels and the scale bar in physical units.
function dimensions(info) {
  const { resolution } = info.scales[0];
  return Object.fromEntries(["x", "y", "z"].map((axis, i) => [axis, [resolution[i] * 1e-9, "m"]]));
}

// Zoom (voxels of the finest axis per screen pixel) that fits the volume's largest physical
// extent into a slice panel of about 400 pixels; Neuroglancer centres the view on the data.
function fittedZoom(info) {
  const { size, resolution } = info.scales[0];
  const extent = Math.max(...size.map((n, i) => n * resolution[i]));
  return extent / Math.min(...resolution) / 400;
}

// The viewer state for one volume: image or segmentation layer (from `info`), four panels.
function volumeState(volume, info) {
  const layer = { source: `precomputed://${volume.url}`, name: volume.name };
  const state = {
    layers: [layer],
    selectedLayer: { layer: volume.name },
    layout: "4panel",
    crossSectionBackgroundColor: "#000000",
  };
  if (info) {
    layer.type = info.type === "segmentation" ? "segmentation" : "image";
    Object.assign(state, { dimensions: dimensions(info), crossSectionScale: fittedZoom(info) });
  }
  return state;
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
    const volume = await locateVolume(root, datasetId);
    viewer.state.restoreState(volumeState(volume, await readInfo(volume.url)));
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
