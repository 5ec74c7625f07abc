# Shared set-up helpers for the scripts in this folder (source it, do not run it).
# Every function is idempotent and reuses caches kept outside the clone
# ($NS_CACHE: venvs keyed by the hash of their pin file, the pip wheel cache).
set -euo pipefail

NS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NS_CACHE="${NS_CACHE:-$HOME/.cache/neurostation}"
NS_PYTHON="${NS_PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$NS_CACHE"

ns_log() { printf '[neurostation] %s\n' "$*" >&2; }

# Install Debian packages that are missing (podman for the tool container, debootstrap for
# its base image, chromium for the browser test). Needs root, as on these machines.
ns_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  ns_log "apt-get install ${missing[*]}"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null
}

ns_hash() { cat "$@" | sha256sum | cut -c1-12; }

# ns_cached_venv NAME PINFILE... -> prints the venv path; (re)built when the pins change.
ns_cached_venv() {
  local name="$1"; shift
  local venv="$NS_CACHE/$name-$(ns_hash "$@")"
  # One builder at a time (e.g. scripts/galaxy and scripts/test-galaxy started together):
  # a second caller waits for the first instead of deleting its half-built venv.
  local lockfd
  exec {lockfd}>"$venv.lock"
  flock "$lockfd"
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
    ns_log "creating $name venv in $venv (pip, a few minutes on a fresh machine)"
    rm -rf "$venv"
    "$NS_PYTHON" -m venv "$venv"
    local req=(); for f in "$@"; do req+=(-r "$f"); done
    "$venv/bin/pip" install -q "${req[@]}" 2>&1 | grep -v "is ignored: it is neither" >&2 || true
    "$venv/bin/python" -c "import sys" && touch "$venv/.complete"
  fi
  exec {lockfd}>&-
  echo "$venv"
}

# Install pinned requirements from a local wheel folder ($NS_CACHE/wheels), downloading only
# what it lacks: every clean clone makes a new package venv, and pip's own HTTP cache does not
# help here (the registry proxy sends no cache headers).
ns_pip_from_wheels() {
  local venv="$1"; shift
  local wheels="$NS_CACHE/wheels" req=()
  for f in "$@"; do req+=(-r "$f"); done
  mkdir -p "$wheels"
  if ! "$venv/bin/pip" install -q --no-index --find-links "$wheels" "${req[@]}" >/dev/null 2>&1; then
    ns_log "downloading wheels into $wheels"
    "$venv/bin/pip" download -q -d "$wheels" "${req[@]}" 2>&1 | grep -v "is ignored: it is neither" >&2 || true
    "$venv/bin/pip" install -q --no-index --find-links "$wheels" "${req[@]}"
  fi
}

# The package venv lives in the clone (.venv) so tools in "local" job mode find it;
# the runtime pins come from requirements/runtime.txt, the same file the container uses.
ns_package_venv() {
  local venv="$NS_ROOT/.venv" stamp
  stamp="$(ns_hash "$NS_ROOT/requirements/runtime.txt" "$NS_ROOT/requirements/test.txt" "$NS_ROOT/pyproject.toml")"
  if [ ! -f "$venv/.stamp" ] || [ "$(cat "$venv/.stamp")" != "$stamp" ]; then
    ns_log "creating package venv in $venv"
    rm -rf "$venv"
    "$NS_PYTHON" -m venv "$venv"
    ns_pip_from_wheels "$venv" "$NS_ROOT/requirements/runtime.txt" "$NS_ROOT/requirements/test.txt"
    "$venv/bin/pip" install -q --no-deps -e "$NS_ROOT" 2>&1 | grep -v "is ignored: it is neither" >&2 || true
    "$venv/bin/neurostation" --version >/dev/null
    echo "$stamp" > "$venv/.stamp"
  fi
  echo "$venv"
}

ns_tooling_venv() { ns_cached_venv tooling "$NS_ROOT/requirements/tooling.txt"; }
ns_galaxy_venv() { ns_cached_venv galaxy "$NS_ROOT/requirements/galaxy.txt"; }

# ns_viewer_bundle -> prints the folder of the standalone Neuroglancer client (viewer.js,
# viewer.css, index.html, assets/) bundled with Vite from the neuroglancer npm package by the
# recipe in visualizations/neuroglancer/ (package.json + package-lock.json, vite.config.js,
# src/, public/). node_modules is cached per lock file, the bundle per hash of the recipe, both
# under $NS_CACHE; the bundle is linked as visualizations/neuroglancer/static/dist (git-ignored),
# where the Galaxy plugin's entry point finds it.
ns_viewer_bundle() {
  local recipe="$NS_ROOT/visualizations/neuroglancer" lockfd
  local modules="$NS_CACHE/viewer-npm-$(ns_hash "$recipe/package.json" "$recipe/package-lock.json")"
  local bundle="$NS_CACHE/viewer-$(cd "$recipe" && ns_hash package.json package-lock.json vite.config.js $(find src public -type f | sort))"
  exec {lockfd}>"$bundle.lock"
  flock "$lockfd"
  if [ ! -f "$bundle/.complete" ]; then
    if [ ! -f "$modules/.complete" ]; then
      ns_log "npm install for the viewer in $modules"
      rm -rf "$modules"; mkdir -p "$modules"
      cp "$recipe/package.json" "$recipe/package-lock.json" "$modules/"
      # `npm install`, not `npm ci`: the lock lists only this platform's optional packages.
      (cd "$modules" && nice -n 10 npm install --no-audit --no-fund --loglevel=error >&2)
      touch "$modules/.complete"
    fi
    ns_log "bundling the Neuroglancer client into $bundle"
    local work="$bundle.work"
    rm -rf "$work" "$bundle"; mkdir -p "$work"
    cp -r "$recipe/package.json" "$recipe/vite.config.js" "$recipe/src" "$recipe/public" "$work/"
    ln -s "$modules/node_modules" "$work/node_modules"
    (cd "$work" && nice -n 10 node node_modules/vite/bin/vite.js build --logLevel warn --outDir "$bundle" >&2)
    rm -rf "$work"
    touch "$bundle/.complete"
  fi
  exec {lockfd}>&-
  ln -sfn "$bundle" "$recipe/static/dist"
  echo "$bundle"
}
