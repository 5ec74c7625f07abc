"""`neurostation mesh`: meshes made box by box (many small boxes) equal the marching-cubes
surface of each whole object in memory (scikit-image), are welded watertight across box
borders, sit inside the object's physical box, and the Neuroglancer legacy files and the OBJ /
PLY / STL exports say the same; bad input stops with one line and leaves no output."""

import json
import os

import numpy as np
import pytest
from cloudvolume import CloudVolume
from label_synth import small_boxes, write_ome  # noqa: F401
from skimage.measure import marching_cubes, mesh_surface_area

from neurostation.cli import main
from neurostation.io.precomputed import write_record
from neurostation.visualize import mesh
from neurostation.visualize.mesh_files import decode_fragment

VOXEL_UM = (0.5, 0.5, 1.0)  # x, y, z
SHAPE_ZYX = (14, 27, 30)
RADIUS_UM = 5.0
SPHERE, BLOCK = 5, 9


def objects():
    """Labels (z, y, x): a ball of radius 5 µm (label 5) and a 6 x 4 x 3 voxel block (label 9)
    on the volume's x = 0 face (so its mesh is closed by the border)."""
    z, y, x = np.indices(SHAPE_ZYX, dtype=np.float64)
    centre = (6.3, 13.1, 17.4)  # z, y, x voxels
    d2 = sum(((c - m) * s) ** 2 for c, m, s in zip((z, y, x), centre, VOXEL_UM[::-1]))
    labels = np.zeros(SHAPE_ZYX, np.uint16)
    labels[d2 <= RADIUS_UM ** 2] = SPHERE
    labels[10:13, 2:6, 0:6] = BLOCK
    return labels


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mesh")
    labels = objects()
    return write_ome(folder / "objects.ome.tif", labels, VOXEL_UM), labels


def reference_area(labels, label, spacing_zyx):
    """scikit-image's marching cubes of the whole object in memory (its box padded by 1)."""
    inside = np.pad(labels == label, 1).astype(np.float32)
    vertices, faces, _, _ = marching_cubes(inside, 0.5, spacing=spacing_zyx)
    return mesh_surface_area(vertices, faces)


def edge_uses(faces):
    """How many faces use each undirected edge."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return np.unique(edges, axis=0, return_counts=True)[1]


def read_legacy(volume, label):
    """The mesh of `label` from a precomputed volume's legacy mesh files: one fragment per
    object, already welded (no two vertices at one position)."""
    info = json.load(open(volume / "info"))
    mesh_dir = volume / info["mesh"]
    assert json.load(open(mesh_dir / "info")) == {"@type": "neuroglancer_legacy_mesh"}
    manifest = json.load(open(mesh_dir / f"{label}:0"))
    assert manifest == {"fragments": [f"{label}:0:0"]}
    vertices, faces = decode_fragment((mesh_dir / manifest["fragments"][0]).read_bytes())
    assert len(np.unique(vertices, axis=0)) == len(vertices)
    return vertices, faces


def read_obj(path):
    lines = path.read_text().splitlines()
    vertices = np.array([line.split()[1:] for line in lines if line.startswith("v ")], np.float64)
    faces = np.array([line.split()[1:] for line in lines if line.startswith("f ")], np.int64) - 1
    return vertices, faces


@pytest.mark.parametrize("jobs", [1, 2])
def test_meshes_equal_marching_cubes_in_memory(labels_file, small_boxes, tmp_path, jobs):  # noqa: F811
    path, labels = labels_file
    volume, export = tmp_path / "vol", tmp_path / "export"
    assert main(["mesh", path, "-o", str(volume), "--export", str(export), "--jobs", str(jobs)]) == 0
    spacing_nm = np.array(VOXEL_UM) * 1000
    for label in (SPHERE, BLOCK):
        vertices, faces = read_legacy(volume, label)  # cut by several boxes, welded
        assert (edge_uses(faces) == 2).all()  # watertight across the box borders
        area = mesh_surface_area(vertices.astype(np.float64), faces)
        assert area == pytest.approx(reference_area(labels, label, tuple(spacing_nm[::-1])),
                                     rel=1e-6)
        # the object's physical box: voxel i spans i .. i + 1 voxels (offset 0)
        zyx = np.argwhere(labels == label)
        low, high = zyx.min(axis=0)[::-1] * spacing_nm, (zyx.max(axis=0)[::-1] + 1) * spacing_nm
        # (the surface passes half-way between an object's voxel centres and its neighbours':
        # through the faces of its outermost voxels)
        assert np.allclose(vertices.min(axis=0), low) and np.allclose(vertices.max(axis=0), high)
        obj_vertices, obj_faces = read_obj(export / f"label_{label}.obj")
        assert len(obj_faces) == len(faces) and len(obj_vertices) == len(vertices)
        assert mesh_surface_area(obj_vertices, obj_faces) == pytest.approx(area, rel=1e-6)
    # the ball's area is 4 pi r^2 plus the staircase of its voxels, which marching cubes on a
    # binary image keeps: 12 % more here (10 voxels across the radius in x and y, 5 in z)
    vertices, faces = read_legacy(volume, SPHERE)
    ratio = mesh_surface_area(vertices.astype(np.float64), faces) / 1e6 / (4 * np.pi * RADIUS_UM ** 2)
    assert 1.0 < ratio < 1.15
    assert sorted(os.listdir(export)) == ["label_5.obj", "label_9.obj"]
    record = json.load(open(volume / "neurostation.json"))
    assert record["complete"] and record["meshes"]["objects"] == 2
    assert np.array_equal(CloudVolume(f"file://{volume}")[:, :, :][..., 0].T, labels)


def test_large_objects_are_split_into_several_fragments(labels_file, small_boxes,  # noqa: F811
                                                         tmp_path, monkeypatch):
    """An object of more triangles than FRAGMENT_TRIANGLES gets several fragments, each of
    consecutive pieces welded; together they weld into the one-fragment mesh."""
    path, _ = labels_file
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["mesh", path, "-o", str(whole)]) == 0
    monkeypatch.setattr(mesh, "FRAGMENT_TRIANGLES", 300)
    assert main(["mesh", path, "-o", str(split)]) == 0
    vertices, faces = read_legacy(whole, SPHERE)
    names = json.load(open(split / "mesh" / f"{SPHERE}:0"))["fragments"]
    assert len(names) > 2 and names == [f"{SPHERE}:0:{i}" for i in range(len(names))]
    pieces = [decode_fragment((split / "mesh" / name).read_bytes()) for name in names]
    assert all(0 < len(f) for _, f in pieces)
    # welded here by comparing every vertex (fragments are not box pieces)
    every = np.concatenate([v for v, _ in pieces])
    starts = np.cumsum([0] + [len(v) for v, _ in pieces[:-1]])
    unique, index = np.unique(every, axis=0, return_inverse=True)
    joined = index.reshape(-1)[np.concatenate([f + s for (_, f), s in zip(pieces, starts)])]
    assert len(joined) == len(faces) and (edge_uses(joined) == 2).all()
    assert np.array_equal(unique, np.unique(vertices, axis=0))


def test_block_area_is_the_analytic_one(labels_file, tmp_path):
    """Marching cubes on an a x b x c voxel block: flat faces between the outer voxel centres,
    chamfers along the edges and a triangle at each corner (voxels of 0.5 x 0.5 x 1 µm)."""
    path, _ = labels_file
    assert main(["mesh", path, "--export", str(tmp_path / "e"), "--labels", str(BLOCK)]) == 0
    vertices, faces = read_obj(tmp_path / "e" / f"label_{BLOCK}.obj")
    (a, b, c), (sx, sy, sz) = (6, 4, 3), np.array(VOXEL_UM) * 1000
    x, y, z = (a - 1) * sx, (b - 1) * sy, (c - 1) * sz
    flat = 2 * (x * y + x * z + y * z)
    edges = 4 * (x * np.hypot(sy, sz) + y * np.hypot(sx, sz) + z * np.hypot(sx, sy)) / 2
    corner = 0.5 * np.linalg.norm(np.cross((-sx / 2, sy / 2, 0), (-sx / 2, 0, sz / 2)))
    assert mesh_surface_area(vertices, faces) == pytest.approx(flat + edges + 8 * corner, rel=1e-9)


def test_simplified_meshes_still_meet(labels_file, small_boxes, tmp_path):  # noqa: F811
    path, labels = labels_file
    exact, simple = tmp_path / "exact", tmp_path / "simple"
    assert main(["mesh", path, "--export", str(exact), "--labels", str(SPHERE)]) == 0
    assert main(["mesh", path, "--export", str(simple), "--labels", str(SPHERE),
                 "--reduction", "4"]) == 0
    v0, f0 = read_obj(exact / "label_5.obj")
    v1, f1 = read_obj(simple / "label_5.obj")
    assert len(f1) < 0.6 * len(f0)
    assert (edge_uses(f1) == 2).all()
    assert mesh_surface_area(v1, f1) == pytest.approx(mesh_surface_area(v0, f0), rel=0.05)


def test_ply_and_stl(labels_file, tmp_path):
    path, labels = labels_file
    ply, stl = tmp_path / "ply", tmp_path / "stl"
    assert main(["mesh", path, "--export", str(ply), "--labels", "9", "--export-format", "ply"]) == 0
    assert main(["mesh", path, "--export", str(stl), "--labels", "9", "--export-format", "stl"]) == 0
    text = (ply / "label_9.ply").read_text().splitlines()
    vertices = int(text[2].split()[-1])
    faces = int(text[6].split()[-1])
    body = text[text.index("end_header") + 1:]
    v = np.array([line.split() for line in body[:vertices]], np.float64)
    f = np.array([line.split()[1:] for line in body[vertices:]], np.int64)
    assert len(f) == faces and (edge_uses(f) == 2).all()
    area = mesh_surface_area(v, f)
    assert area == pytest.approx(reference_area(objects(), BLOCK, (1000.0, 500.0, 500.0)), rel=1e-6)
    data = (stl / "label_9.stl").read_bytes()
    count = int.from_bytes(data[80:84], "little")
    assert count == faces and len(data) == 84 + 50 * count
    records = np.frombuffer(data[84:], [("n", "<f4", 3), ("c", "<f4", (3, 3)), ("a", "<u2")])
    corners = records["c"].astype(np.float64)
    stl_area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0],
                                             corners[:, 2] - corners[:, 0]), axis=1).sum()
    assert stl_area == pytest.approx(area, rel=1e-6)


def test_precomputed_input_keeps_its_offset(small_boxes, tmp_path):  # noqa: F811
    """A precomputed segmentation with a voxel offset: the copy keeps it and its record, and
    the vertices sit in Neuroglancer's physical space ((offset + index) x voxel size)."""
    source = tmp_path / "seg"
    offset, res = (10, 20, 5), (4, 4, 40)
    info = CloudVolume.create_new_info(1, "segmentation", "uint32", "raw", res, offset,
                                       (16, 12, 6), chunk_size=(8, 8, 3))
    vol = CloudVolume(f"file://{source}", info=info, compress=False)
    vol.commit_info()
    labels = np.zeros((16, 12, 6), np.uint32)  # x, y, z
    labels[3:9, 2:7, 1:5] = 42
    vol[10:26, 20:32, 5:11] = labels
    write_record(f"file://{source}", command="test")
    out = tmp_path / "out"
    assert main(["mesh", str(source), "-o", str(out)]) == 0
    info = json.load(open(out / "info"))
    assert info["scales"][0]["voxel_offset"] == list(offset) and info["mesh"] == "mesh"
    assert json.load(open(out / "neurostation.json"))["command"] == "test"
    vertices, faces = read_legacy(out, 42)
    assert (edge_uses(faces) == 2).all()
    low = (np.array(offset) + (3, 2, 1)) * res
    high = (np.array(offset) + (9, 7, 5)) * res
    assert np.allclose(vertices.min(axis=0), low) and np.allclose(vertices.max(axis=0), high)
    assert np.array_equal(CloudVolume(f"file://{out}")[10:26, 20:32, 5:11][..., 0], labels)


@pytest.mark.parametrize("args, message", [
    (["objects_float.ome.tif", "-o", "{out}"], "holds float32 values; a label volume holds integers"),
    (["objects_empty.ome.tif", "-o", "{out}"], "holds no object (every voxel is 0): nothing to mesh"),
    (["objects_labels.ome.tif", "--export", "{out}", "--labels", "1,99,100"],
     "--labels names 99,100, not in objects_labels.ome.tif; its objects are 1,2,3,7"),
    (["objects_labels.ome.tif", "--export", "{out}", "--labels", "1,x"], "--labels must be object numbers"),
    (["objects_labels.ome.tif", "-o", "{out}", "--labels", "1"], "give --export FOLDER too"),
    (["objects_labels.ome.tif"], "nothing to write"),
    (["objects_labels.ome.tif", "-o", "{out}", "--reduction", "-1"], "--reduction must be 0"),
    (["labels_vol", "-o", "{out}", "--voxel-size", "1,1,1"], "--voxel-size is for files"),
    (["labels_vol", "-o", "{out}/deeper/vol"], "its parent folder does not exist"),
])
def test_bad_input(data, cli, tmp_path, args, message):
    out = tmp_path / "out"
    args = [data(args[0]), *[a.replace("{out}", str(out)) for a in args[1:]]]
    result = cli("mesh", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in result.stderr
    assert os.listdir(tmp_path) == []  # no output, no leftover staging folder


def test_output_folder_not_empty(data, cli, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = cli("mesh", data("objects_labels.ome.tif"), "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "exists and is not an empty folder" in result.stderr
    assert os.listdir(tmp_path / "out") == ["keep.txt"]


def test_on_a_dask_cluster_equals_local(labels_file, small_boxes, tmp_path):  # noqa: F811
    """--scheduler: the boxes (and the welding) run on a Dask cluster on loopback; every mesh
    file equals the local run's byte for byte."""
    from distributed import LocalCluster

    path, _ = labels_file
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert main(["mesh", path, "-o", str(local), "--jobs", "1"]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        assert main(["mesh", path, "-o", str(remote), "--scheduler", cluster.scheduler_address]) == 0
    names = sorted(os.listdir(local / "mesh"))
    assert names == sorted(os.listdir(remote / "mesh")) == ["5:0", "5:0:0", "9:0", "9:0:0",
                                                           "info"]
    for name in names:
        assert (local / "mesh" / name).read_bytes() == (remote / "mesh" / name).read_bytes(), name


def test_json_reference_input_is_written_anew(data, tmp_path):
    """A volume given by URL (a JSON reference) is written as a new segmentation with the
    meshes: same labels, and the meshes of labels_vol's three 6 x 12 x 4 voxel blocks."""
    reference = tmp_path / "ref.json"
    reference.write_text(json.dumps({"url": f"file://{data('labels_vol')}"}))
    out = tmp_path / "out"
    assert main(["mesh", str(reference), "-o", str(out)]) == 0
    source = CloudVolume(f"file://{data('labels_vol')}")[:, :, :]
    assert np.array_equal(CloudVolume(f"file://{out}")[:, :, :], source)
    for label in (1, 2, 3):
        vertices, faces = read_legacy(out, label)
        assert (edge_uses(faces) == 2).all()
        low = np.argwhere(source[..., 0] == label).min(axis=0) * (250, 250, 1000)
        assert np.allclose(vertices.min(axis=0), low)
