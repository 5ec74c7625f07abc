"""`neurostation align`: sections cut from a real image after known rigid motions come back to
within 0.5 px and 0.2 degrees; sign convention; sizes, names, colour, voxel size; bad inputs."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage import color, data
from skimage.transform import AffineTransform, rotate, warp

from neurostation.cli import main
from neurostation.ingest import align, rigid
from neurostation.io.tiff import describe_tiff

SIZE = 352  # sections are the centre of a 512 x 512 picture: the same centre, no empty corners


def motion(angle_deg, dx, dy, c):
    """3x3 matrix (x, y): turn counter-clockwise as displayed (y down) about c, then shift."""
    t = np.radians(angle_deg)
    m = np.eye(3)
    m[:2, :2] = [[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]
    m[:2, 2] = c - m[:2, :2] @ c + (dx, dy)
    return m


def as_params(m, c):
    return np.degrees(np.arctan2(m[0, 1], m[0, 0])), *(m[:2, 2] - c + m[:2, :2] @ c)


def cut_sections(picture, motions, seed, size=SIZE, noise=3.0):
    """The picture moved by each matrix, its centre `size` square, plus noise (uint8)."""
    rng = np.random.default_rng(seed)
    lo = (picture.shape[0] - size) // 2
    out = []
    for m in motions:
        moved = warp(picture, AffineTransform(matrix=np.linalg.inv(m)), order=3,
                     preserve_range=True)[lo:lo + size, lo:lo + size]
        out.append(np.clip(np.rint(moved + rng.normal(0, noise, moved.shape)), 0, 255)
                   .astype(np.uint8))
    return out


def random_motions(n, seed, c):
    """Known motions of each section: rotations within +-5 degrees, shifts within +-10 px."""
    rng = np.random.default_rng(seed)
    return [motion(rng.uniform(-5, 5), *rng.uniform(-10, 10, 2), c) for _ in range(n)]


def read_table(path):
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert lines[0] == "z\tdx\tdy\tangle_deg"
    rows = list(csv.DictReader(lines, delimiter="\t"))
    assert [int(r["z"]) for r in rows] == list(range(len(rows)))
    return np.array([[float(r["angle_deg"]), float(r["dx"]), float(r["dy"])] for r in rows])


def expected(motions, reference, c):
    """What align should apply to section k: undo its motion, redo the reference's."""
    return np.array([as_params(motions[reference] @ np.linalg.inv(m), c) for m in motions])


def assert_close(found, truth):
    assert np.abs(found[:, 0] - truth[:, 0]).max() <= 0.2, (found, truth)
    assert np.abs(found[:, 1:] - truth[:, 1:]).max() <= 0.5, (found, truth)


def centre_ncc(a, b, border=60):
    a, b = (x[border:-border, border:-border].astype(float) for x in (a, b))
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())


def run_align(paths, tmp_path, *options):
    """`neurostation align PATHS -o o.tif --transforms t.tsv OPTIONS` in this process."""
    return main(["align", *map(str, paths), "-o", str(tmp_path / "o.tif"), "--transforms",
                 str(tmp_path / "t.tsv"), *options])


@pytest.fixture(scope="module")
def camera():
    return data.camera().astype(float)


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory, camera):
    """Six sections of the camera picture under known motions, as one multi-page TIFF,
    aligned through the real CLI with two processes."""
    folder = tmp_path_factory.mktemp("stack")
    c = np.array([255.5, 255.5])
    motions = random_motions(6, seed=7, c=c)
    tifffile.imwrite(folder / "in.tif", np.stack(cut_sections(camera, motions, seed=1)),
                     metadata={"axes": "ZYX"})
    result = subprocess.run(
        [sys.executable, "-m", "neurostation.cli", "align", folder / "in.tif", "-o",
         folder / "out.tif", "--transforms", folder / "t.tsv", "--jobs", "2"],
        capture_output=True, text=True)
    return folder, motions, c, result


def test_recovers_known_motions_through_the_cli(stack_run):
    folder, motions, c, result = stack_run
    assert result.returncode == 0, result.stderr
    assert "aligned 6 sections on a 352 x 352 px canvas" in result.stderr
    found = read_table(folder / "t.tsv")
    assert np.all(found[0] == 0)
    assert_close(found, expected(motions, 0, c))


def test_aligned_sections_match(stack_run):
    folder = stack_run[0]
    facts = describe_tiff(folder / "out.tif")
    assert (facts["axes"], facts["shape"], facts["dtype"]) == ("ZYX", (6, SIZE, SIZE), "uint8")
    aligned = tifffile.imread(folder / "out.tif")
    original = tifffile.imread(folder / "in.tif")
    assert np.array_equal(aligned[0], original[0])  # the reference is left untouched
    for k in range(1, 6):
        assert centre_ncc(aligned[k], aligned[0]) > 0.99
    before = np.mean([centre_ncc(original[k], original[0]) for k in range(1, 6)])
    assert before < 0.8  # there was something to align


def test_sign_convention_matches_skimage_rotate_and_shift(tmp_path, camera):
    """A section turned 4 degrees counter-clockwise (skimage.transform.rotate) and moved
    6 px right, 3 px down is put back by angle -4, dx -6, dy -3 (both about the centre)."""
    first = camera[80:432, 80:432]
    turned = rotate(camera, 4, order=3, preserve_range=True)[80:432, 80:432]
    moved = ndimage.shift(first, (3, 6), order=3)
    paths = []
    for name, image in (("s0", first), ("s1", turned), ("s2", moved)):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.clip(image, 0, 255).astype(np.uint8))
        paths.append(tmp_path / f"{name}.tif")
    for other, truth in ((paths[1], [-4, 0, 0]), (paths[2], [0, -6, -3])):
        assert run_align([paths[0], other], tmp_path) == 0
        found = read_table(tmp_path / "t.tsv")
        assert_close(found, np.array([[0, 0, 0], truth]))


def test_sections_of_different_sizes_named_by_galaxy(tmp_path, camera):
    """Sections with their own sizes are centred on one canvas; files called *.dat are
    sorted by their element identifiers, naturally (section_2 before section_10)."""
    c = np.array([255.5, 255.5])
    motions = random_motions(3, seed=3, c=c)
    sections = cut_sections(camera, motions, seed=2)
    sections[1] = sections[1][20:-20, 10:-10]  # 312 x 332 (rows x cols)
    sections[2] = sections[2][:, 30:-30]
    names = ["section_10", "section_2", "section_1"]  # files in the opposite order
    paths = []
    for k, name in zip((2, 1, 0), names):
        paths.append(tmp_path / f"dataset_{k + 7}.dat")
        tifffile.imwrite(paths[-1], sections[k])
    assert run_align(paths, tmp_path, "--names", *names, "--reference", "middle") == 0
    found = read_table(tmp_path / "t.tsv")
    assert np.all(found[1] == 0)
    assert_close(found, expected(motions, 1, c))
    aligned = tifffile.imread(tmp_path / "o.tif")
    assert aligned.shape == (3, SIZE, SIZE)
    assert centre_ncc(aligned[0], aligned[1]) > 0.97 and centre_ncc(aligned[2], aligned[1]) > 0.97


def test_rgb_stack_keeps_colour_and_voxel_size(tmp_path):
    picture = data.astronaut()[100:420, 100:420]
    shifted = ndimage.shift(picture, (-4, 7, 0), order=1)
    tifffile.imwrite(tmp_path / "rgb.tif", np.stack([picture, shifted]), photometric="rgb",
                     resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER",
                     metadata={"axes": "ZYXS"})
    assert run_align([tmp_path / "rgb.tif"], tmp_path) == 0
    assert_close(read_table(tmp_path / "t.tsv"), np.array([[0, 0, 0], [0, -7, 4]]))
    facts = describe_tiff(tmp_path / "o.tif")
    assert facts["axes"] == "ZYXS" and facts["shape"] == (2, 320, 320, 3)
    assert np.allclose(facts["voxel_size"][:2], (500, 500)) and facts["voxel_unit"] == "nm"
    aligned = tifffile.imread(tmp_path / "o.tif")
    gray = color.rgb2gray(aligned)
    assert centre_ncc(gray[0], gray[1]) > 0.99


def test_blank_section_is_kept_in_place_with_a_warning(tmp_path, camera, capsys):
    picture = camera[100:228, 100:228].astype(np.uint8)
    planes = np.stack([picture, np.zeros_like(picture), np.roll(picture, 3, axis=1)])
    tifffile.imwrite(tmp_path / "in.tif", planes, photometric="minisblack",
                     metadata={"axes": "ZYX"})
    assert run_align([tmp_path / "in.tif"], tmp_path) == 0
    assert np.all(read_table(tmp_path / "t.tsv") == 0)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        f"warning: sections {z - 1} and {z} do not match (NCC -1.00, blank or damaged?); "
        f"section {z} is kept in place relative to section {z - 1}" for z in (1, 2)]


def test_chain_and_params_round_trip():
    c = np.array([10.0, 20.0])
    m = rigid.matrix(3.5, 2.0, -1.0, c)
    assert np.allclose(rigid.params(m, c), (3.5, 2.0, -1.0))
    assert np.allclose(m, motion(3.5, 2.0, -1.0, c))
    step = {1: rigid.matrix(1, 1, 0, c), 2: rigid.matrix(2, 0, 1, c)}
    first, middle = align.chain(step, 0), align.chain(step, 1)
    assert np.allclose(first[2], step[1] @ step[2])
    assert np.allclose(middle[1], np.eye(3)) and np.allclose(middle[0], np.linalg.inv(step[1]))


def _one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


@pytest.fixture
def two(tmp_path, camera):
    paths = [tmp_path / "a.tif", tmp_path / "b.tif"]
    for p in paths:
        tifffile.imwrite(p, camera[:64, :64].astype(np.uint8))
    return paths


def test_single_section(tmp_path, two, capsys):
    assert run_align(two[:1], tmp_path) == 2
    assert _one_line_error(capsys) == ("error: a.tif holds a single section; nothing to align: "
                                       "give a z-stack or two or more section images")
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((1, 8, 8), np.uint8),
                     metadata={"axes": "ZYX"})
    assert run_align([tmp_path / "one.tif"], tmp_path) == 2
    assert "one.tif holds a single section; nothing to align" in _one_line_error(capsys)


def test_non_image_and_truncated(tmp_path, two, capsys, data):
    assert run_align([two[0], data("not_an_image.txt")], tmp_path) == 2
    assert _one_line_error(capsys) == (
        "error: not_an_image.txt is not a TIFF, NIfTI-1 or Neuroglancer precomputed volume "
        "(it starts with b'x\\ty\\n1\\t2\\n')")
    assert run_align([data("truncated.tif")], tmp_path) == 2
    assert _one_line_error(capsys).startswith("error: TIFF truncated.tif is truncated or corrupt (")
    assert run_align([two[0], data("anatomical.nii")], tmp_path) == 2
    assert _one_line_error(capsys) == ("error: anatomical.nii is a nifti input; align takes TIFF "
                                       "images (one z-stack, or one 2D image per section)")


def test_different_dtypes_4d_and_stacks_among_sections(tmp_path, two, capsys):
    tifffile.imwrite(two[1], np.zeros((64, 64), np.uint16))
    assert run_align(two, tmp_path) == 2
    assert _one_line_error(capsys) == ("error: sections differ in data type: a.tif is uint8 but "
                                       "b.tif is uint16; convert them to one type first")
    tifffile.imwrite(tmp_path / "four.tif", np.zeros((2, 3, 16, 16), np.uint8),
                     photometric="minisblack", metadata={"axes": "TZYX"})
    assert run_align([tmp_path / "four.tif"], tmp_path) == 2
    assert _one_line_error(capsys) == (
        "error: four.tif has axes TZYX and shape (2, 3, 16, 16); align takes a z-stack (ZYX) "
        "or 2D sections (YX), grey or RGB")
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((3, 64, 64), np.uint8),
                     photometric="minisblack", metadata={"axes": "ZYX"})
    assert run_align([two[0], tmp_path / "z.tif"], tmp_path) == 2
    assert _one_line_error(capsys) == ("error: z.tif is a stack of 3 planes; give either one "
                                       "z-stack or one 2D image per section")


@pytest.mark.parametrize("options, message", [
    (["--max-rotation", "0"], "error: --max-rotation must be in (0, 180] degrees, got 0"),
    (["--jobs", "-1"], "error: --jobs must be 0 (automatic) or a positive number, got -1"),
    (["--names", "x"], "error: --names gives 1 names for 2 inputs; give one name per input, "
                       "in the same order"),
])
def test_bad_options(tmp_path, two, capsys, options, message):
    assert run_align(two, tmp_path, *options) == 2
    assert _one_line_error(capsys) == message
    assert not os.path.exists(tmp_path / "o.tif")
