// Bundles the standalone Neuroglancer client (src/main.js) from the neuroglancer npm package.
// Run by scripts/build-viewer; output: viewer.js + viewer.css (stable names, referenced by
// static/neuroglancer.xml and public/index.html) plus hashed worker/asset files.
import fs from "node:fs";
import path from "node:path";
import { defineConfig } from "vite";

// The neuroglancer package pins ikonate to a GitHub commit (not reachable from the npm
// registry); package.json overrides it with ikonate 1.1.1, which lacks three newer icons.
// Those are drawn with the closest icon of 1.1.1.
const IKONATE_STAND_INS = { "code-alt": "component", "controls-alt": "controls", layers: "grid" };

function ikonateStandIns() {
  return {
    name: "ikonate-stand-ins",
    enforce: "pre",
    resolveId(source) {
      const match = /^ikonate\/icons\/([\w-]+)\.svg\?raw$/.exec(source);
      if (!match || !(match[1] in IKONATE_STAND_INS)) return null;
      const file = path.resolve("node_modules/ikonate/icons", `${IKONATE_STAND_INS[match[1]]}.svg`);
      if (!fs.existsSync(file)) throw new Error(`ikonate icon missing: ${file}`);
      return `${file}?raw`;
    },
  };
}

// Neuroglancer starts its workers with `new Worker(/* webpackChunkName: … */ new URL(…))`; Vite
// only bundles a worker when `new URL` follows `new Worker(` directly, and otherwise inlines
// the unbundled worker file as a data: URL that cannot load. Drop those comments.
function bundleNeuroglancerWorkers() {
  return {
    name: "bundle-neuroglancer-workers",
    enforce: "pre",
    transform(code, id) {
      if (!id.includes("/node_modules/neuroglancer/") || !code.includes("webpackChunkName")) return null;
      return { code: code.replace(/\/\*\s*webpackChunkName:[^*]*\*\/\s*/g, ""), map: null };
    },
  };
}

export default defineConfig({
  // Relative URLs: Galaxy serves the files under /static/plugins/visualizations/neuroglancer/static/dist/.
  base: "",
  plugins: [ikonateStandIns(), bundleNeuroglancerWorkers()],
  resolve: {
    // Only the data sources NeuroStation writes or references: precomputed over HTTP(S), S3, GCS.
    conditions: ["neuroglancer/datasource:none_by_default", "neuroglancer/datasource/precomputed:enabled"],
  },
  // Worker bundles get their own plugin list (the chunk worker starts the async-computation worker).
  worker: { format: "es", plugins: () => [ikonateStandIns(), bundleNeuroglancerWorkers()] },
  build: {
    target: "es2022",
    emptyOutDir: true,
    chunkSizeWarningLimit: 4 * 1024 * 1024,
    rollupOptions: {
      input: { viewer: path.resolve("src/main.js") },
      output: {
        format: "es",
        entryFileNames: "[name].js",
        assetFileNames: (asset) => (asset.names?.[0] ?? "").endsWith(".css") ? "[name][extname]" : "assets/[name]-[hash][extname]",
      },
    },
  },
});
