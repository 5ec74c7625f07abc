"""A standard Neuroglancer JSON state for a list of volumes, and the link that carries it.

The first volume sets the global axes (its finest voxel size, in metres), the position (the
centre of its data, in those voxels) and the zoom (its largest extent fits ~400 screen pixels).
Image layers get a contrast for the invlerp control `normalized` of Neuroglancer's default
image shader; a second image and later ones are coloured overlays blended additively.
"""

import json
import urllib.parse

from ..errors import UserError

# Screen pixels the largest extent of the first volume spans in a slice panel.
FIT_PIXELS = 400
# Colours of overlay image layers (the first image is grey), in turn.
OVERLAY_COLOURS = ("#00ff00", "#ff00ff", "#00ffff", "#ffff00", "#ff8000")
OVERLAY_SHADER = """#uicontrol invlerp normalized
#uicontrol vec3 color color(default="{colour}")
void main() {{
  emitRGB(color * normalized());
}}
"""
# Neuroglancer's state in the URL fragment: `#!` then the URL-encoded JSON.
FRAGMENT = "#!"


def check_voxel_sizes(volumes):
    """Refuse volumes whose voxels are not on one grid with the first's: on every axis one
    voxel size must be a whole multiple of the other (a label volume at half resolution is fine)."""
    base = volumes[0]
    for vol in volumes[1:]:
        for a, b in zip(base.resolution, vol.resolution):
            ratio = max(a, b) / min(a, b)
            if abs(ratio - round(ratio)) > 1e-3 * ratio:
                raise UserError(
                    f"volumes {base.name} ({_nm(base.resolution)}) and {vol.name} "
                    f"({_nm(vol.resolution)}) have incompatible voxel sizes: on every axis one "
                    "must be a whole multiple of the other")


def _nm(resolution):
    return "x".join(f"{r:g}" for r in resolution) + " nm"


def layer(volume, source, layer_type, contrast=None, overlay=0, segments=()):
    """The JSON of one layer: `source` is the URL the browser reads the volume from."""
    spec = {"type": layer_type, "source": f"precomputed://{source}", "name": volume.name}
    if layer_type == "image":
        if contrast is not None:
            spec["shaderControls"] = {"normalized": {"range": list(contrast)}}
        if overlay:
            colour = OVERLAY_COLOURS[(overlay - 1) % len(OVERLAY_COLOURS)]
            spec["shader"] = OVERLAY_SHADER.format(colour=colour)
            spec["blend"] = "additive"
    elif segments:
        spec["segments"] = [str(s) for s in segments]
    return spec


def viewer_state(first, layers):
    """The whole state: axes, position and zoom from the `first` Volume, then `layers`."""
    extent_nm = max(n * r for n, r in zip(first.size, first.resolution))
    canonical_nm = min(first.resolution)  # Neuroglancer zooms in units of the finest axis
    return {
        "dimensions": {axis: [r / 1e9, "m"] for axis, r in zip("xyz", first.resolution)},
        "position": [o + n / 2 for o, n in zip(first.offset, first.size)],
        "crossSectionScale": extent_nm / canonical_nm / FIT_PIXELS,
        "projectionScale": 2 * extent_nm / canonical_nm,
        "layout": "4panel",
        "crossSectionBackgroundColor": "#000000",
        "layers": layers,
        "selectedLayer": {"layer": layers[0]["name"], "visible": True},
    }


def make_link(viewer_url, state):
    """`viewer_url` with the state in its fragment, as Neuroglancer writes and reads it."""
    text = json.dumps(state, separators=(",", ":"))
    return viewer_url.split("#", 1)[0] + FRAGMENT + urllib.parse.quote(text, safe="")

