"""Regenerate the small files in test-data/ (run with the package venv: .venv/bin/python).

Synthetic stacks carry known values and voxel sizes so tests can check them exactly;
the NIfTI files are nibabel's own test data (MIT licence), copied as they are.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import nibabel
import numpy as np
import skops.io
import tifffile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test-data")


def ramp(shape, dtype, steps=(100, 10, 1)):
    """A volume whose value at (z, y, x) is z*steps[0] + y*steps[1] + x*steps[2]."""
    z, y, x = np.indices(shape)
    return (z * steps[0] + y * steps[1] + x * steps[2]).astype(dtype)


def make_sections(out):
    """Two serial sections of a real image (scikit-image's camera), the second turned by 3 degrees
    and shifted by (4, -3) px; each cut into 2x2 tiles of 96 px with 24 px overlap and a known
    jitter. Also the three-section stack sections.tif (0, 3 and 5 degrees) for align."""
    from scipy import ndimage
    from skimage import data as skdata, transform

    camera = skdata.camera()[100:400, 120:420].astype(float)
    folder = os.path.join(ROOT, "tiles")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    jitter = [(0, 0), (2, -1), (-1, 2), (1, 1)]
    for sec, (angle, shift) in enumerate([(0.0, (0, 0)), (3.0, (-3, 4))]):
        img = ndimage.shift(transform.rotate(camera, angle, preserve_range=True), shift, order=1)
        for i, (dy, dx) in enumerate(jitter):
            r, c = divmod(i, 2)
            y0, x0 = 60 + r * 72 + dy, 60 + c * 72 + dx
            tifffile.imwrite(os.path.join(folder, f"sec{sec}_tile{i}.tif"),
                             img[y0:y0 + 96, x0:x0 + 96].astype(np.uint8), metadata={"axes": "YX"})
    stack = [ndimage.shift(transform.rotate(camera, a, preserve_range=True), s, order=1)[70:230, 70:230]
             for a, s in [(0.0, (0, 0)), (3.0, (2, -4)), (5.0, (5, -1))]]
    tifffile.imwrite(out("sections.tif"), np.stack(stack).astype(np.uint8), metadata={"axes": "ZYX"})


def make_fmri(out):
    """fMRI test data in test-data/fmri/: two subjects' 4D series (8 x 8 x 6 voxels of 3 mm,
    40 volumes, TR 2 s) whose four block regions carry signals with the planted correlation
    FMRI_CORR (region means exactly the planted signals, up to float32), the block atlas with
    a label-names table, an fMRIPrep-style confounds table, the planted signals as time-series
    tables, and a two-community matrix for graph-metrics."""
    import pandas as pd

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from fmri_synth import AFFINE, block_atlas, exact_signals, series_from_signals

    folder = out("fmri")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    corr = np.array([[1.0, 0.8, 0.0, 0.0], [0.8, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -0.5],
                     [0.0, 0.0, -0.5, 1.0]])
    names = ["visual_L", "visual_R", "motor_L", "motor_R"]
    labels = block_atlas((8, 8, 6), (2, 2, 1))
    nibabel.save(nibabel.Nifti1Image(labels, AFFINE), os.path.join(folder, "atlas.nii.gz"))
    with open(os.path.join(folder, "atlas_labels.tsv"), "w") as handle:
        handle.write("index\tname\n" + "".join(f"{k}\t{n}\n" for k, n in enumerate(names, 1)))
    for sub, seed in (("01", 11), ("02", 12)):
        signals = exact_signals(corr, 40, seed=seed)
        img = series_from_signals(labels, signals, seed=seed + 10)
        img = nibabel.Nifti1Image(img.get_fdata().astype(np.float32), img.affine, img.header)
        img.set_data_dtype(np.float32)
        nibabel.save(img, os.path.join(folder, f"sub-{sub}_task-rest_bold.nii.gz"))
        pd.DataFrame(signals, columns=names).to_csv(
            os.path.join(folder, f"sub-{sub}_task-rest_timeseries.tsv"), sep="\t", index=False,
            float_format="%.12g")
    rng = np.random.default_rng(7)
    motion = np.cumsum(rng.normal(0, 0.05, (40, 2)), axis=0)
    conf = pd.DataFrame(motion, columns=["trans_x", "rot_z"])
    conf["trans_x_derivative1"] = np.r_[np.nan, np.diff(motion[:, 0])]
    conf.to_csv(os.path.join(folder, "sub-01_task-rest_desc-confounds_timeseries.tsv"),
                sep="\t", index=False, na_rep="n/a", float_format="%.8g")
    conf.iloc[:30].to_csv(os.path.join(folder, "confounds_short.tsv"), sep="\t", index=False,
                          na_rep="n/a", float_format="%.8g")
    m = np.full((6, 6), 0.05)
    m[:3, :3] = m[3:, 3:] = 0.9
    m[2, 3] = m[3, 2] = 0.4
    np.fill_diagonal(m, 1.0)
    regions = ["A1", "A2", "A3", "B1", "B2", "B3"]
    frame = pd.DataFrame(m, columns=regions)
    frame.insert(0, "region", regions)
    frame.to_csv(os.path.join(folder, "matrix.tsv"), sep="\t", index=False)
    m[0, 5] = 0.7
    frame = pd.DataFrame(m, columns=regions)
    frame.insert(0, "region", regions)
    frame.to_csv(os.path.join(folder, "matrix_asymmetric.tsv"), sep="\t", index=False)


def make_registration_data(out):
    """The MNI152 template (nilearn's) at 4 mm moved by a known affine (register_moving.nii.gz,
    int16), that affine (register_truth.txt: template world -> moving world) and a left/right
    hemisphere atlas on the 4 mm template grid (register_atlas.nii.gz)."""
    from dipy.align.imaffine import AffineMap
    from dipy.align.reslice import reslice

    from neurostation.processing.register import default_template

    img = nibabel.load(default_template())
    data, affine = reslice(img.get_fdata(), img.affine, img.header.get_zooms()[:3], (4.0,) * 3)
    a, b = np.radians(5), np.radians(3)
    truth = np.eye(4)
    truth[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    truth[:3, :3] = truth[:3, :3] @ [[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]]
    truth[:3, 3] = (4, -3, 2)
    grid = dict(domain_grid_shape=data.shape, domain_grid2world=affine,
                codomain_grid_shape=data.shape, codomain_grid2world=affine)
    moving = AffineMap(np.linalg.inv(truth), **grid).transform(data)
    nibabel.save(nibabel.Nifti1Image(np.rint(moving).astype(np.int16), affine),
                 out("register_moving.nii.gz"))
    np.savetxt(out("register_truth.txt"), truth, fmt="%.6f")
    x_world = nibabel.affines.apply_affine(affine, np.indices(data.shape).transpose(1, 2, 3, 0))[..., 0]
    atlas = np.where(data > 0.2 * data.max(), np.where(x_world < 0, 1, 2), 0).astype(np.uint8)
    nibabel.save(nibabel.Nifti1Image(atlas, affine), out("register_atlas.nii.gz"))


def make_fmri_series(out):
    """Small synthetic 4D series with known answers. seed_bold.nii.gz (10 x 10 x 6 x 30, 3 mm):
    a seed box (label 1 of seed_labels.nii.gz) carries a signal, a second box 0.8 x that signal
    plus noise, the rest noise. ica_bold.nii.gz (12 x 12 x 6 x 40) mixes two sparse spatial
    sources; ica_mask.nii.gz leaves out the border."""
    rng = np.random.default_rng(6)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = (-15, -15, -9)
    signal = rng.standard_normal(30)
    bold = 100 + rng.standard_normal((10, 10, 6, 30))
    bold[1:3, 1:3, 1:3] = 100 + signal + 0.1 * rng.standard_normal((2, 2, 2, 30))
    bold[6:9, 6:9, 3:5] = 100 + 0.8 * signal + 0.6 * rng.standard_normal((3, 3, 2, 30))
    series = nibabel.Nifti1Image(bold.astype(np.float32), affine)
    series.header.set_xyzt_units("mm", "sec")
    series.header["pixdim"][4] = 2.0
    nibabel.save(series, out("seed_bold.nii.gz"))
    labels = np.zeros((10, 10, 6), np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    nibabel.save(nibabel.Nifti1Image(labels, affine), out("seed_labels.nii.gz"))
    sources = np.zeros((2, 12, 12, 6))
    sources[0, 2:6, 2:6, 1:4] = rng.laplace(3, 1, (4, 4, 3))
    sources[1, 6:10, 6:10, 2:5] = rng.laplace(3, 1, (4, 4, 3))
    mixed = np.einsum("kxyz,tk->xyzt", sources, rng.standard_normal((40, 2)))
    mixed += 50 + 0.2 * rng.standard_normal(mixed.shape)
    nibabel.save(nibabel.Nifti1Image(mixed.astype(np.float32), affine), out("ica_bold.nii.gz"))
    mask = np.zeros((12, 12, 6), np.uint8)
    mask[1:-1, 1:-1, :] = 1
    nibabel.save(nibabel.Nifti1Image(mask, affine), out("ica_mask.nii.gz"))


def make_view_volumes(out):
    """Inputs of `view`: a label volume on vol_ome's grid (segments 1, 2, 3 side by side in x,
    background 0 around them) and a folder whose `info` is not JSON."""
    labels = np.zeros((4, 16, 20), np.uint32)
    labels[:, 2:14, 1:7], labels[:, 2:14, 7:13], labels[:, 2:14, 13:19] = 1, 2, 3
    shutil.rmtree(out("labels_vol"), ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        tifffile.imwrite(os.path.join(tmp, "labels.tif"), labels, metadata={"axes": "ZYX"})
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "neurostation"), "ingest",
                        os.path.join(tmp, "labels.tif"), "-o", out("labels_vol"),
                        "--layer-type", "segmentation", "--voxel-size", "250,250,1000",
                        "--chunk-size", "8,8,2"], check=True)
    os.makedirs(out("broken_info_vol"), exist_ok=True)
    with open(os.path.join(out("broken_info_vol"), "info"), "w") as handle:
        handle.write('{"type": "image", "scales": [\n')
    with open(out("unreachable_ref.json"), "w") as handle:  # nothing listens on port 9
        handle.write('{"url": "http://127.0.0.1:9/volume"}\n')


def main():
    os.makedirs(ROOT, exist_ok=True)
    out = lambda name: os.path.join(ROOT, name)  # noqa: E731
    # ImageJ hyperstack as Fiji writes it: 0.5 um pixels, 2 um z-spacing.
    tifffile.imwrite(out("stack_imagej.tif"), ramp((5, 24, 32), np.uint16), imagej=True,
                     resolution=(1 / 0.5, 1 / 0.5), metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"})
    # OME-TIFF with physical sizes 250 nm x 250 nm x 1 um.
    tifffile.imwrite(out("stack.ome.tif"), ramp((4, 16, 20), np.uint8, (50, 2, 1)), ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25,
                               "PhysicalSizeZ": 1.0, "PhysicalSizeXUnit": "µm",
                               "PhysicalSizeYUnit": "µm", "PhysicalSizeZUnit": "µm"})
    # A truncated copy: the header survives, the pixel data does not.
    with open(out("stack_imagej.tif"), "rb") as handle:
        data = handle.read()
    with open(out("truncated.tif"), "wb") as handle:
        handle.write(data[: len(data) // 3])
    with open(out("not_an_image.txt"), "w") as handle:
        handle.write("x\ty\n1\t2\n")
    nib_data = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data")
    for name in ("functional.nii", "anatomical.nii"):
        shutil.copy(os.path.join(nib_data, name), out(name))
    make_sections(out)
    make_fmri(out)
    make_registration_data(out)
    make_fmri_series(out)
    # A small precomputed volume (test input for the neuroglancer_precomputed datatype).
    shutil.rmtree(out("vol_ome"), ignore_errors=True)
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "neurostation"), "ingest",
                    out("stack.ome.tif"), "-o", out("vol_ome"), "--chunk-size", "8,8,2"], check=True)
    make_view_volumes(out)
    make_qc_data(out)
    make_objects_data(out)
    make_label_data(out)
    make_nuclei_data(out)
    make_predict_data(out)
    make_blobs_data(out)
    make_split_data(out)
    make_classify_data(out)


def write_ome(path, zyx, voxel_um):
    """An OME-TIFF (axes ZYX) with physical voxel sizes (x, y, z) in µm."""
    tifffile.imwrite(path, zyx, ome=True, photometric="minisblack",
                     metadata={"axes": "ZYX", **{f"PhysicalSize{a}": v for a, v in zip("XYZ", voxel_um)},
                               **{f"PhysicalSize{a}Unit": "µm" for a in "XYZ"}})


def make_qc_data(out):
    """Inputs of `qc`: a 24 x 20 x 6 volume (0.5 x 0.5 x 2 µm) with a bright 4 x 4 x 2 cube at
    x 4-8, y 12-16, z 1-3 (200 on 10), its labels (1: the cube, 2: a 6 x 4 x 6 bar at x 14-20,
    y 2-6), a copy with other voxel sizes, the mosaic of the first tile section stitched with
    its positions.tsv (bad inputs: broken_info_vol and unreachable_ref.json of the view data)."""
    blob = np.full((6, 20, 24), 10, np.uint8)
    blob[1:3, 12:16, 4:8] = 200
    write_ome(out("qc_blob.ome.tif"), blob, (0.5, 0.5, 2.0))
    write_ome(out("qc_blob_coarse.ome.tif"), blob, (1.0, 1.0, 2.0))
    labels = np.zeros(blob.shape, np.uint16)
    labels[1:3, 12:16, 4:8] = 1
    labels[:, 2:6, 14:20] = 2
    write_ome(out("qc_labels.ome.tif"), labels, (0.5, 0.5, 2.0))
    tiles = [os.path.join(ROOT, "tiles", f"sec0_tile{i}.tif") for i in range(4)]
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "neurostation"), "stitch", *tiles,
                    "--grid", "2x2", "--overlap", "0.25", "-o", out("qc_mosaic.tif"),
                    "--positions", out("qc_positions.tsv")], check=True)


def make_objects_data(out):
    """Inputs of `measure` and `adjacency` (24 x 20 x 6 voxels of 0.5 x 0.5 x 2 µm, uint16):
    objects_labels: 1 = x 2-6, y 2-5, z 1-3 (24 voxels) touching 2 = x 6-9, y 2-5, z 1-3
    (18 voxels) across 6 x faces (6 µm²); 3 = x 14-20, y 10-16, z 0-4 (144 voxels) touching
    7 = x 16-18, y 12-15, z 4-6 (12 voxels) across 6 z faces (1.5 µm²); intensity x + 2y + 10z;
    objects_labels_b: only objects 3 and 7; objects_empty: no object; objects_float: float32."""
    labels = np.zeros((6, 20, 24), np.uint16)
    labels[1:3, 2:5, 2:6] = 1
    labels[1:3, 2:5, 6:9] = 2
    labels[0:4, 10:16, 14:20] = 3
    labels[4:6, 12:15, 16:18] = 7
    write_ome(out("objects_labels.ome.tif"), labels, (0.5, 0.5, 2.0))
    z, y, x = np.indices(labels.shape)
    write_ome(out("objects_intensity.ome.tif"), (x + 2 * y + 10 * z).astype(np.uint16),
              (0.5, 0.5, 2.0))
    write_ome(out("objects_labels_b.ome.tif"), np.where(labels > 2, labels, 0).astype(np.uint16),
              (0.5, 0.5, 2.0))
    write_ome(out("objects_empty.ome.tif"), np.zeros_like(labels), (0.5, 0.5, 2.0))
    write_ome(out("objects_float.ome.tif"), labels.astype(np.float32), (0.5, 0.5, 2.0))


def make_label_data(out):
    """Input of `label`: a 20 x 16 x 6 mask (0.5 x 0.5 x 1 µm) with a 4 x 4 x 3 cube (48 voxels),
    two voxels touching only at a corner (one object 26-connected, two 6-connected), a bar
    touching the border (144 voxels) and a single voxel: 4 objects (26), 5 objects (6)."""
    mask = np.zeros((6, 16, 20), np.uint8)
    mask[1:4, 2:6, 2:6] = 1
    mask[2, 10, 10] = mask[3, 11, 11] = 1
    mask[:, 12:16, 14:20] = 1
    mask[4, 5, 15] = 1
    write_ome(out("label_mask.ome.tif"), mask, (0.5, 0.5, 1.0))


def make_nuclei_data(out):
    """nuclei.ome.tif, the segmentation workflow's input: 80 x 80 x 20 (x, y, z) uint16 at
    0.5 x 0.5 x 1 µm, six separate round nuclei (radius 3.5 µm) and one touching pair (centres
    5.5 µm apart, so one connected object until split) on a noisy background: 7 objects after
    labelling, 8 after the watershed split."""
    z, y, x = np.mgrid[:20, :80, :80]
    centres = [(14, 14, 10), (40, 13, 9), (66, 15, 11), (14, 66, 10), (40, 64, 10), (66, 66, 9),
               (29, 40, 10), (40, 40, 10)]  # (x, y, z) voxels; the last two touch
    image = np.zeros(z.shape)
    for cx, cy, cz in centres:
        r2 = ((x - cx) * 0.5) ** 2 + ((y - cy) * 0.5) ** 2 + (z - cz) ** 2  # µm²
        image = np.maximum(image, 1000 / (1 + np.exp((np.sqrt(r2) - 3.5) / 0.4)))
    noise = np.random.default_rng(11).normal(100, 25, z.shape)
    write_ome(out("nuclei.ome.tif"), np.clip(image + noise, 0, None).astype(np.uint16),
              (0.5, 0.5, 1.0))


def make_classify_data(out):
    """Inputs of `classify` and `classify-objects`. classify_image: 32 x 24 x 4 (0.5 x 0.5 x 1
    µm) float32 noise around 20 with two bright 8 x 6 x 2 blocks (around 120) at x 4-12, y 4-10
    and x 20-28, y 14-20, z 1-3; classify_annotations: a few voxels of background (1) and of
    the blocks (2); classify_model.skops: the forest trained on them (sigma 1, 10 trees);
    classify_unsafe.skops: a skops file holding a function (os.system), which must be refused.
    classify_cells: 12 labelled boxes (uint16) — odd labels 2 x 2 x 2 voxels, even labels
    4 x 4 x 2 — with classify_objects.tsv (their `measure` table), classify_training.tsv
    (objects 1-4 labelled small/large), classify_exclude.txt (objects 6 and 7) and
    classify_exclude_unknown.txt (6 and 40, which does not exist)."""
    rng = np.random.default_rng(11)
    image = rng.normal(20, 4, (4, 24, 32))
    image[1:3, 4:10, 4:12] += 100
    image[1:3, 14:20, 20:28] += 100
    write_ome(out("classify_image.ome.tif"), image.astype(np.float32), (0.5, 0.5, 1.0))
    ann = np.zeros(image.shape, np.uint8)
    ann[0, 0, ::3] = ann[3, 22, 1::4] = ann[2, 12, 10:20] = 1
    ann[1, 6, 5:11] = ann[2, 16, 21:27] = 2
    write_ome(out("classify_annotations.ome.tif"), ann, (0.5, 0.5, 1.0))
    neurostation = os.path.join(os.path.dirname(sys.executable), "neurostation")
    subprocess.run([neurostation, "classify", out("classify_image.ome.tif"), "--annotations",
                    out("classify_annotations.ome.tif"), "--sigmas", "1", "--trees", "10",
                    "--save-model", out("classify_model.skops"), "-o",
                    out("classify_segmentation.ome.tif")], check=True)
    os.remove(out("classify_segmentation.ome.tif"))
    skops.io.dump({"format": "neurostation-model-1", "model": os.system},
                  out("classify_unsafe.skops"))
    cells = np.zeros((4, 24, 32), np.uint16)
    for label in range(1, 13):
        y, x = 2 + 8 * ((label - 1) // 4), 2 + 8 * ((label - 1) % 4)
        size = 2 if label % 2 else 4
        cells[1:3, y:y + size, x:x + size] = label
    write_ome(out("classify_cells.ome.tif"), cells, (0.5, 0.5, 1.0))
    subprocess.run([neurostation, "measure", out("classify_cells.ome.tif"), "-o",
                    out("classify_objects.tsv")], check=True)
    with open(out("classify_training.tsv"), "w") as f:
        f.write("label\tclass\n1\tsmall\n2\tlarge\n3\tsmall\n4\tlarge\n")
    with open(out("classify_exclude.txt"), "w") as f:
        f.write("label\n6\n7\n")
    with open(out("classify_exclude_unknown.txt"), "w") as f:
        f.write("6\n40\n")


def _test_helpers():
    """Make the helpers in tests/ (model and spot builders) importable."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))


def make_predict_data(out):
    """Model of `predict`: predict_conv3d.onnx, a 3x3x3 mean filter minus 100 then a sigmoid,
    fixed input 1 x 1 x 8 x 8 x 8 (built with the onnx package): on qc_blob.ome.tif (a 200 cube
    on 10) near 1 where the 3x3x3 mean exceeds 100, near 0 elsewhere."""
    _test_helpers()
    from onnx_models import conv_sigmoid_3d

    conv_sigmoid_3d(out("predict_conv3d.onnx"), np.full((3, 3, 3), 1 / 27), -100.0,
                    shape=(1, 1, 8, 8, 8))


def make_blobs_data(out):
    """Inputs of `blobs`: blobs_image.ome.tif, 40 x 32 x 12 voxels of 0.5 x 0.5 x 1 µm (uint16),
    five gaussian spots of sigma 1.5 voxels on noise: three in cell 1 (x 4-18, y 4-16, z 2-10),
    one in cell 2 (x 24-36, y 4-28, z 2-10), one outside (x 10, y 18, z 6); blobs_cells.ome.tif
    the cells and cell 3 (x 4-18, y 20-28, z 2-10) with no spot."""
    _test_helpers()
    from spot_synth import spots_volume

    centres = [(5, 8, 8), (6, 12, 14), (8, 7, 15), (6, 16, 30), (6, 18, 10)]  # z, y, x
    write_ome(out("blobs_image.ome.tif"), spots_volume((12, 32, 40), centres, 1.5, noise=500),
              (0.5, 0.5, 1.0))
    cells = np.zeros((12, 32, 40), np.uint16)
    cells[2:10, 4:16, 4:18] = 1
    cells[2:10, 4:28, 24:36] = 2
    cells[2:10, 20:28, 4:18] = 3
    write_ome(out("blobs_cells.ome.tif"), cells, (0.5, 0.5, 1.0))


def make_split_data(out):
    """Inputs of local thresholds and `label --split` (0.5 x 0.5 x 1 µm voxels):
    threshold_ramp: a 48 x 32 x 4 uint8 image lit unevenly (30 + 3 x along x) with six 4 x 4
    spots 40 brighter in planes 1-2, where one global threshold cannot find them all;
    split_spheres: a 40 x 28 x 12 mask of two overlapping balls of radius 3 µm, centres 4.5 µm
    apart along x (one object, two once split), and a ball of radius 2.5 µm apart (never split)."""
    z, y, x = np.indices((4, 32, 48))
    image = 30 + 3 * x
    for cx, cy in ((4, 6), (14, 20), (22, 8), (30, 24), (38, 10), (43, 22)):
        image[1:3, cy:cy + 4, cx:cx + 4] += 40
    write_ome(out("threshold_ramp.ome.tif"), image.astype(np.uint8), (0.5, 0.5, 1.0))
    z, y, x = np.indices((12, 28, 40)) * np.array([1.0, 0.5, 0.5])[:, None, None, None]
    ball = lambda cx, cy, cz, r: (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r * r  # noqa: E731
    mask = ball(5.0, 6.0, 6.0, 3.0) | ball(9.5, 6.0, 6.0, 3.0) | ball(16.0, 8.0, 6.0, 2.5)
    write_ome(out("split_spheres.ome.tif"), mask.astype(np.uint8), (0.5, 0.5, 1.0))


if __name__ == "__main__":
    main()
