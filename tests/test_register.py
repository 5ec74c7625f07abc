"""`neurostation register`: a known affine applied to the MNI152 template (3 mm) comes back to
within 1 voxel RMS over nilearn's brain mask; atlas labels follow the true inverse mapping;
SyN writes displacement fields; bad templates and inputs get clear messages."""

import os

import nibabel as nib
import numpy as np
import pytest
from dipy.align.imaffine import AffineMap
from dipy.align.reslice import reslice
from nilearn.datasets import load_mni152_brain_mask
from nilearn.image import resample_to_img
from PIL import Image

from neurostation.processing.register import default_template

MM = 3.0


def rotation(ax, ay, az):
    a, b, c = np.radians([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def known_affine():
    """Template world -> moving world: turned by (6, -4, 8) degrees, scaled by up to 5 %,
    sheared a little and shifted by (6, -5, 4) mm."""
    m = np.eye(4)
    m[:3, :3] = rotation(6, -4, 8) @ np.diag([1.05, 0.95, 1.0]) @ [[1, 0.03, 0], [0, 1, 0], [0, 0, 1]]
    m[:3, 3] = (6, -5, 4)
    return m


def grid_map(matrix, shape, affine):
    """dipy's AffineMap from a grid to itself with `matrix` (world -> world)."""
    return AffineMap(matrix, domain_grid_shape=shape, domain_grid2world=affine,
                     codomain_grid_shape=shape, codomain_grid2world=affine)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The MNI template at 3 mm, the moving image made from it with the known affine, the
    brain mask (nilearn's) on that grid and a two-label atlas (left/right hemisphere)."""
    folder = tmp_path_factory.mktemp("register")
    img = nib.load(default_template())
    data, affine = reslice(img.get_fdata(), img.affine, img.header.get_zooms()[:3], (MM,) * 3)
    template = nib.Nifti1Image(data.astype(np.float32), affine)
    truth = known_affine()
    # moving(y) = template(truth^-1 y): sample the template at truth^-1 of the moving grid
    moving = grid_map(np.linalg.inv(truth), data.shape, affine).transform(data)
    mask = resample_to_img(load_mni152_brain_mask(), template, interpolation="nearest",
                           force_resample=True, copy_header=True).get_fdata() > 0
    x_world = (affine @ np.vstack([np.indices(data.shape).reshape(3, -1), np.ones(data.size)]))[0]
    atlas = np.where(mask, np.where(x_world.reshape(data.shape) < 0, 1, 2), 0).astype(np.uint16)
    paths = {name: str(folder / f"{name}.nii.gz") for name in ("template", "moving", "atlas")}
    nib.save(template, paths["template"])
    nib.save(nib.Nifti1Image(moving.astype(np.float32), affine), paths["moving"])
    nib.save(nib.Nifti1Image(atlas, affine), paths["atlas"])
    paths["truth"] = str(folder / "truth.txt")
    np.savetxt(paths["truth"], truth)
    return {"paths": paths, "truth": truth, "mask": mask, "affine": affine, "atlas": atlas,
            "template": data, "folder": folder}


@pytest.fixture(scope="module")
def affine_run(synthetic, tmp_path_factory):
    import subprocess
    import sys

    p, out = synthetic["paths"], tmp_path_factory.mktemp("affine_out")
    files = {k: str(out / n) for k, n in (("reg", "registered.nii.gz"), ("tf", "affine.txt"),
                                          ("labels", "labels.nii.gz"), ("qc", "qc.png"),
                                          ("report", "report.tsv"))}
    proc = subprocess.run(
        [sys.executable, "-m", "neurostation.cli", "register", p["moving"], "--template",
         p["template"], "-o", files["reg"], "--transform", files["tf"], "--atlas", p["atlas"],
         "--labels-out", files["labels"], "--qc", files["qc"], "--report", files["report"],
         "--reference-transform", p["truth"]], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc, files


def rms_voxels(found, truth, mask, affine):
    ijk = np.vstack([np.argwhere(mask).T, np.ones(int(mask.sum()))])
    diff = ((found - truth) @ (affine @ ijk))[:3]
    return np.sqrt((diff ** 2).sum(axis=0).mean()) / MM


def test_recovers_known_affine_within_one_voxel(synthetic, affine_run):
    proc, files = affine_run
    found = np.loadtxt(files["tf"])
    assert found.shape == (4, 4)
    rms = rms_voxels(found, synthetic["truth"], synthetic["mask"], synthetic["affine"])
    assert rms <= 1.0, (rms, found)
    report = dict(line.split("\t") for line in open(files["report"]).read().splitlines()[1:])
    assert abs(float(report["rms_voxels"]) - rms) < 0.05  # the command's own figure agrees
    assert f"RMS distance to the reference transform {report['rms_voxels']} voxels" in proc.stdout
    assert float(report["ncc_after"]) > 0.9 > float(report["ncc_before"])


def test_registered_image_matches_template(synthetic, affine_run):
    _, files = affine_run
    reg = nib.load(files["reg"])
    assert reg.shape == synthetic["template"].shape
    assert np.allclose(reg.affine, synthetic["affine"])
    mask = synthetic["mask"]
    r = np.corrcoef(reg.get_fdata()[mask], synthetic["template"][mask])[0, 1]
    assert r > 0.9


def test_atlas_labels_follow_the_true_inverse_mapping(synthetic, affine_run):
    _, files = affine_run
    labels = nib.load(files["labels"])
    assert np.allclose(labels.affine, synthetic["affine"])
    shape, affine = synthetic["template"].shape, synthetic["affine"]
    # labels in moving space: the atlas at truth^-1 y, by dipy with the true matrix
    expected = grid_map(np.linalg.inv(synthetic["truth"]), shape, affine).transform(synthetic["atlas"].astype(float), interpolation="nearest")
    found = np.asanyarray(labels.dataobj)
    assert set(np.unique(found)) == {0, 1, 2}
    brain = expected > 0
    assert (found[brain] == expected[brain]).mean() > 0.95


def test_qc_png(affine_run):
    _, files = affine_run
    with Image.open(files["qc"]) as png:
        assert png.size == (900, 330)
        pixels = np.asarray(png.convert("L"))
    assert pixels.std() > 10  # a picture, not a blank


def test_deformable_writes_warps(synthetic, cli, tmp_path):
    p = synthetic["paths"]
    # start from a 6 mm version to keep SyN quick; few iterations
    out = {n: str(tmp_path / n) for n in ("reg.nii.gz", "tf.txt", "warp.nii.gz", "inv.nii.gz",
                                          "report.tsv")}
    proc = cli("register", p["moving"], "--template", p["template"], "--resolution", "6",
               "-o", out["reg.nii.gz"], "--transform", out["tf.txt"], "--deformable",
               "--warp", out["warp.nii.gz"], "--inverse-warp", out["inv.nii.gz"],
               "--affine-iterations", "100,50,10", "--syn-iterations", "5,5",
               "--report", out["report.tsv"])
    assert proc.returncode == 0, proc.stderr
    reg = nib.load(out["reg.nii.gz"])
    for name in ("warp.nii.gz", "inv.nii.gz"):
        warp = nib.load(out[name])
        assert warp.shape == reg.shape + (1, 3)
        assert warp.header.get_intent()[0] == "vector"
        assert np.isfinite(warp.get_fdata()).all() and np.abs(warp.get_fdata()).max() > 0
    report = dict(line.split("\t") for line in open(out["report.tsv"]).read().splitlines()[1:])
    assert report["stages"] == "affine+syn"
    assert float(report["ncc_after"]) > 0.9


def write(path, data, affine=np.eye(4), zooms=None):
    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    if zooms is not None:
        img.header["pixdim"][1:4] = zooms
    nib.save(img, path)
    return str(path)


@pytest.mark.parametrize("zooms, message", [((2, np.nan, 2), "zero or invalid voxel size"),
                                            ((2, 0, 2), "zero or invalid voxel size")])
def test_bad_template_voxel_size(cli, tmp_path, zooms, message):
    blob = np.zeros((10, 10, 10))
    blob[3:7, 3:7, 3:7] = 1
    template = write(tmp_path / "t.nii", blob, zooms=zooms)
    moving = write(tmp_path / "m.nii", blob)
    proc = cli("register", moving, "--template", template, "-o", tmp_path / "o.nii.gz",
               "--transform", tmp_path / "a.txt")
    assert proc.returncode == 2
    assert message in proc.stderr and "t.nii" in proc.stderr
    assert not os.path.exists(tmp_path / "o.nii.gz")


def test_4d_moving_is_refused(cli, tmp_path, synthetic):
    moving = write(tmp_path / "bold.nii.gz", np.random.default_rng(0).random((8, 8, 8, 5)))
    proc = cli("register", moving, "--template", synthetic["paths"]["template"],
               "-o", tmp_path / "o.nii.gz", "--transform", tmp_path / "a.txt")
    assert proc.returncode == 2
    assert "bold.nii.gz is a 4D image (8 x 8 x 8 x 5); register needs a 3D volume" in proc.stderr


def test_empty_moving_is_refused(cli, tmp_path, synthetic):
    moving = write(tmp_path / "empty.nii.gz", np.zeros((8, 8, 8)))
    proc = cli("register", moving, "--template", synthetic["paths"]["template"],
               "-o", tmp_path / "o.nii.gz", "--transform", tmp_path / "a.txt")
    assert proc.returncode == 2
    assert "moving image empty.nii.gz is empty" in proc.stderr


def test_no_overlap_with_header_init(cli, tmp_path, synthetic):
    far = synthetic["affine"].copy()
    far[:3, 3] += 1000
    moving = write(tmp_path / "far.nii.gz", synthetic["template"], far)
    proc = cli("register", moving, "--template", synthetic["paths"]["template"], "--init",
               "header", "-o", tmp_path / "o.nii.gz", "--transform", tmp_path / "a.txt")
    assert proc.returncode == 2
    assert "far.nii.gz does not overlap the template in world coordinates" in proc.stderr
    assert not os.path.exists(tmp_path / "a.txt")


def test_atlas_without_overlap(cli, tmp_path, synthetic):
    far = synthetic["affine"].copy()
    far[:3, 3] += 1000
    atlas = write(tmp_path / "atlas.nii.gz", synthetic["atlas"], far)
    p = synthetic["paths"]
    proc = cli("register", p["moving"], "--template", p["template"], "--atlas", atlas,
               "--labels-out", tmp_path / "l.nii.gz", "-o", tmp_path / "o.nii.gz",
               "--transform", tmp_path / "a.txt")
    assert proc.returncode == 2
    assert "atlas atlas.nii.gz has no labels on the template's grid" in proc.stderr


def test_tiff_moving_with_voxel_size(synthetic, cli, tmp_path):
    """The moving image as an OME-TIFF z-stack (3 mm = 3000 um voxels, origin at 0): the affine
    found is the known one followed by the shift of origin."""
    import tifffile

    moving = nib.load(synthetic["paths"]["moving"]).get_fdata().astype(np.float32)
    um = MM * 1000
    tiff = tmp_path / "moving.ome.tif"
    tifffile.imwrite(tiff, np.transpose(moving, (2, 1, 0)), ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": um, "PhysicalSizeY": um,
                               "PhysicalSizeZ": um, "PhysicalSizeXUnit": "µm",
                               "PhysicalSizeYUnit": "µm", "PhysicalSizeZUnit": "µm"})
    out = tmp_path / "affine.txt"
    proc = cli("register", tiff, "--template", synthetic["paths"]["template"], "-o",
               tmp_path / "reg.nii.gz", "--transform", out)
    assert proc.returncode == 0, proc.stderr
    shift = np.eye(4)
    shift[:3, 3] = -synthetic["affine"][:3, 3]  # TIFF world = NIfTI world - NIfTI origin
    expected = shift @ synthetic["truth"]
    assert rms_voxels(np.loadtxt(out), expected, synthetic["mask"], synthetic["affine"]) <= 1.0


def test_precomputed_moving_at_a_coarser_scale(synthetic, cli, tmp_path):
    """The moving NIfTI ingested into a precomputed pyramid, registered from scale 1: the
    source affine travels with the volume, so the known affine comes back."""
    vol = tmp_path / "vol"
    proc = cli("ingest", synthetic["paths"]["moving"], "-o", vol)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "affine.txt"
    proc = cli("register", vol, "--scale", "1", "--template", synthetic["paths"]["template"],
               "-o", tmp_path / "reg.nii.gz", "--transform", out)
    assert proc.returncode == 0, proc.stderr
    assert rms_voxels(np.loadtxt(out), synthetic["truth"], synthetic["mask"],
                      synthetic["affine"]) <= 1.0
    proc = cli("register", vol, "--scale", "9", "--template", synthetic["paths"]["template"],
               "-o", tmp_path / "r.nii.gz", "--transform", tmp_path / "a.txt")
    assert proc.returncode == 2 and "--scale 9 does not exist" in proc.stderr
