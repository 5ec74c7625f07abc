"""Benchmark `neurostation mesh` (box by box) against meshing the whole volume in memory.

Anchors: read the whole label TIFF, then for every object scikit-image's marching_cubes on its
box padded by 1 (what a script does; the surface ours must equal), and zmesh meshing every
label of the whole array at once (igneous' mesher, in memory). Ours: the precomputed
segmentation with meshes, --jobs 1 and 2. Each is a separate process, timed with its peak RSS;
two volume sizes show whether memory stays flat. The total surface area of our fragments is
checked against scikit-image's. Prints wall and CPU seconds, MiB and CPU ratios.

Run: .venv/bin/python benchmarks/bench_mesh.py   (a few minutes on 2 cores)
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import tifffile
from scipy import ndimage
from skimage.measure import mesh_surface_area

from measure import measure_run
from neurostation.visualize.mesh_files import decode_fragment

VOXEL_NM = (500.0, 500.0, 1000.0)
SKIMAGE = """
import json, sys, numpy as np, tifffile
from scipy import ndimage
from skimage.measure import marching_cubes, mesh_surface_area
labels = tifffile.imread(sys.argv[1])
spacing = tuple(json.loads(sys.argv[3])[::-1])
area, triangles = 0.0, 0
for i, box in enumerate(ndimage.find_objects(labels)):
    if box is None:
        continue
    inside = np.pad(labels[box] == i + 1, 1).astype(np.float32)
    vertices, faces, _, _ = marching_cubes(inside, 0.5, spacing=spacing)
    area += mesh_surface_area(vertices, faces)
    triangles += len(faces)
json.dump({"area": area, "triangles": triangles}, open(sys.argv[2], "w"))
"""
ZMESH = """
import json, sys, tifffile, zmesh
labels = tifffile.imread(sys.argv[1]).T
mesher = zmesh.Mesher(json.loads(sys.argv[3]))
mesher.mesh(labels, close=True)
triangles = sum(len(mesher.get(i, reduction_factor=0).faces) for i in mesher.ids())
json.dump({"triangles": triangles}, open(sys.argv[2], "w"))
"""


def write_blobs(path, shape, seed=1):
    """A uint32 ZYX label TIFF of smooth random blobs (voxels of VOXEL_NM)."""
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), 3) > 0.02
    labels, count = ndimage.label(mask)
    tifffile.imwrite(path, labels.astype(np.uint32), photometric="minisblack", metadata={
        "axes": "ZYX", "PhysicalSizeX": VOXEL_NM[0] / 1000, "PhysicalSizeY": VOXEL_NM[1] / 1000,
        "PhysicalSizeZ": VOXEL_NM[2] / 1000}, ome=True)
    return count


def fragments_area(volume):
    """Total area and triangles of every fragment of a meshed precomputed volume."""
    folder = os.path.join(volume, "mesh")
    area, triangles = 0.0, 0
    for name in os.listdir(folder):
        if name.count(":") == 2:
            with open(os.path.join(folder, name), "rb") as handle:
                vertices, faces = decode_fragment(handle.read())
            area += mesh_surface_area(vertices.astype(np.float64), faces)
            triangles += len(faces)
    return area, triangles


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,256", help="z depths of 256 x 256 label volumes")
    args = parser.parse_args()
    rows = []
    tmp = tempfile.mkdtemp(prefix="bench-mesh-")
    try:
        for depth in (int(d) for d in args.sizes.split(",")):
            labels = os.path.join(tmp, "labels.ome.tif")
            count = write_blobs(labels, (depth, 256, 256))
            spacing = json.dumps(VOXEL_NM)
            runs = {"skimage in memory": [sys.executable, "-c", SKIMAGE, labels,
                                          os.path.join(tmp, "skimage.json"), spacing],
                    "zmesh in memory": [sys.executable, "-c", ZMESH, labels,
                                        os.path.join(tmp, "zmesh.json"), spacing]}
            for jobs in ("1", "2"):
                runs[f"ours --jobs {jobs}"] = [sys.executable, "-m", "neurostation.cli", "mesh",
                                               labels, "-o", os.path.join(tmp, f"vol{jobs}"),
                                               "--jobs", jobs]
            times = {name: measure_run(cmd) for name, cmd in runs.items()}
            reference = json.load(open(os.path.join(tmp, "skimage.json")))
            for jobs in ("1", "2"):
                area, triangles = fragments_area(os.path.join(tmp, f"vol{jobs}"))
                assert triangles == reference["triangles"], (triangles, reference)
                assert abs(area / reference["area"] - 1) < 1e-6, (area, reference["area"])
            base = times["skimage in memory"]
            for name, (seconds, mib, cpu) in times.items():
                rows.append((f"256x256x{depth}", count, name, seconds, mib, cpu,
                             cpu / base.cpu_seconds))
            for jobs in ("1", "2"):
                shutil.rmtree(os.path.join(tmp, f"vol{jobs}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(wall times stretch with load; CPU seconds do not)")
    print(f"{'volume':<12}{'objects':>8}  {'run':<20}{'wall s':>8}{'MiB':>7}{'CPU s':>8}"
          f"{'CPU x skimage':>15}")
    for volume, count, name, seconds, mib, cpu, ratio in rows:
        print(f"{volume:<12}{count:>8}  {name:<20}{seconds:>8.1f}{mib:>7.0f}{cpu:>8.1f}{ratio:>15.2f}")
    print("ours: same triangles as scikit-image, total area equal to 1e-6 (float32 files)")


if __name__ == "__main__":
    main()
