"""`neurostation register`: map a volume to a template (MNI152 by default) with an affine, then
optionally a deformable (SyN) registration; write the registered image, the transforms, an
atlas's labels brought back into the moving image's space and a checkerboard QC picture."""

import os
import sys
import time

import nibabel as nib
import numpy as np

from ..errors import UserError
from ..io.grids import nearest_on_grid, same_grid, voxel_sizes
from ..io.nifti import load_nifti, shape_3d
from ..io.outputs import nifti_suffix, staged
from ..visualize.checkerboard import write_checkerboard
from .volumes import read_any

MNI152 = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def default_template():
    """nilearn's bundled MNI152 2009a T1 template (1 mm, brain only)."""
    import nilearn.datasets

    return os.path.join(os.path.dirname(nilearn.datasets.__file__), "data", MNI152)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "register", help="register a volume to a template (affine, then optional SyN)",
        description="Register a 3D volume to a template: centre of mass, then translation, "
        "rigid and affine stages maximising mutual information, coarse to fine (dipy); with "
        "--deformable also a symmetric diffeomorphic (SyN, cross-correlation) stage. Writes "
        "the moving image resampled on the template grid, the affine as a plain-text 4x4 "
        "matrix (template world mm -> moving world mm, dipy/ANTs convention), the SyN "
        "displacement fields (NIfTI, mm), an atlas's labels brought into the moving image's "
        "space (nearest neighbour) and a checkerboard QC PNG.",
        epilog="example: neurostation register sub-01_T1w.nii.gz -o registered.nii.gz "
        "--transform affine.txt --resolution 2 --atlas atlas.nii.gz --labels-out "
        "labels_in_subject.nii.gz --qc checkerboard.png",
    )
    p.add_argument("moving", help="volume to register: 3D NIfTI, a TIFF z-stack with its voxel "
                   "size, or a precomputed volume (folder, URL or JSON reference)")
    p.add_argument("--scale", type=int, default=0,
                   help="scale of a precomputed moving volume, 0 = full resolution (default)")
    p.add_argument("-o", "--output", required=True,
                   help="registered image: the moving image on the template grid (NIfTI)")
    p.add_argument("--transform", required=True, metavar="TXT",
                   help="write the affine here: 4x4 matrix, template world (mm) -> moving "
                   "world (mm)")
    p.add_argument("--template", help="reference volume (3D NIfTI; default: nilearn's MNI152 "
                   "2009a T1 template, 1 mm)")
    p.add_argument("--resolution", type=float, default=0, metavar="MM",
                   help="resample the template to this isotropic voxel size in mm first "
                   "(default 0: keep its grid); 2-4 mm makes registration much faster")
    p.add_argument("--init", choices=("com", "header"), default="com",
                   help="starting position: match the centres of mass (default) or trust "
                   "the world coordinates in the headers")
    p.add_argument("--affine-iterations", default="200,100,20", metavar="N,N,N",
                   help="optimiser iterations per level, coarse to fine (shrink 4, 2, 1 for "
                   "three levels); default 200,100,20")
    p.add_argument("--deformable", action="store_true",
                   help="add a SyN (symmetric diffeomorphic) stage after the affine")
    p.add_argument("--syn-iterations", default="10,10,5", metavar="N,N,N",
                   help="SyN iterations per level, coarse to fine (default 10,10,5)")
    p.add_argument("--warp", help="with --deformable: write the forward displacement field "
                   "here (NIfTI x,y,z,1,3 on the template grid, mm)")
    p.add_argument("--inverse-warp", help="with --deformable: write the backward displacement "
                   "field here (same layout)")
    p.add_argument("--atlas", help="label image on the template (any grid in template space; "
                   "nearest neighbour) to bring into the moving image's space")
    p.add_argument("--labels-out", help="with --atlas: the atlas labels on the moving image's "
                   "grid (NIfTI)")
    p.add_argument("--qc", metavar="PNG", help="checkerboard of template and registered image "
                   "(mid slices, three orientations)")
    p.add_argument("--reference-transform", metavar="TXT",
                   help="a known transform (same 4x4 format) to compare with: the RMS "
                   "distance, over the template's brain mask, between where the two send each "
                   "voxel is reported in voxels")
    p.add_argument("--report", metavar="TSV", help="write the summary (measure, value) here")
    p.set_defaults(func=run)
    return p


def parse_iterations(text, what):
    """`200,100,20` -> [200, 100, 20] (positive integers)."""
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 0 or max(values) == 0:
        raise UserError(f"{what} must be comma-separated whole numbers, coarse level first "
                        f"(e.g. 200,100,20), got {text!r}")
    return values


def read_volume(path, role):
    """(float64 array x,y,z, affine) of a 3D NIfTI; 4D with one volume is accepted."""
    img = load_nifti(path)
    name = os.path.basename(path)
    shape = shape_3d(img)
    if len(shape) != 3:
        dims = " x ".join(str(n) for n in img.shape)
        raise UserError(f"{role} {name} is a {len(img.shape)}D image ({dims}); register needs "
                        "a 3D volume (x, y, z): pick one volume of a series first")
    if not np.all(np.isfinite(img.affine)):
        raise UserError(f"{role} {name} has a non-finite (NaN) voxel-to-world affine")
    try:
        data = np.asanyarray(img.dataobj, dtype=np.float64).reshape(shape)
    except Exception as exc:  # truncated data surfaces here
        raise UserError(f"cannot read the voxels of {role} {name}: {exc}") from None
    return np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0), img.affine


def check_not_empty(data, role, name):
    if not np.any(data) or np.ptp(data) == 0:
        raise UserError(f"{role} {name} is empty: every voxel has the same value "
                        f"({data.flat[0]:g}); nothing to register")


def world_box(shape, affine):
    """(low, high) world corners of the grid's voxel centres."""
    corners = np.array([[i, j, k, 1] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                        for k in (0, shape[2] - 1)], float)
    points = (affine @ corners.T)[:3]
    return points.min(axis=1), points.max(axis=1)


def check_overlap(template, t_affine, moving, m_affine, name):
    """With header initialisation the two fields of view must meet in world space."""
    (tlo, thi), (mlo, mhi) = world_box(template.shape, t_affine), world_box(moving.shape, m_affine)
    if np.any(mhi < tlo) or np.any(mlo > thi):
        raise UserError(f"{name} does not overlap the template in world coordinates (moving "
                        f"spans {np.round(mlo, 1).tolist()} to {np.round(mhi, 1).tolist()} mm, "
                        f"template {np.round(tlo, 1).tolist()} to {np.round(thi, 1).tolist()} "
                        "mm); use --init com to start from the centres of mass")


def brain_mask(template):
    """Template voxels above Otsu's threshold, holes filled (the brain, ventricles included)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    return ndimage.binary_fill_holes(template > threshold_otsu(template))


def read_matrix(path):
    """A 4x4 affine from a text file (whitespace separated, `#` comments)."""
    name = os.path.basename(path)
    try:
        matrix = np.loadtxt(path, comments="#", ndmin=2)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the transform {name}: {exc}") from None
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)) or \
            not np.allclose(matrix[3], (0, 0, 0, 1)):
        raise UserError(f"{name} is not a 4x4 affine matrix with last row 0 0 0 1 "
                        f"(read shape {matrix.shape})")
    return matrix


def transform_rms(found, reference, mask, affine):
    """RMS distance (mm) between the moving-world points the two matrices give the mask voxels."""
    ijk = np.vstack([np.argwhere(mask).T, np.ones(int(mask.sum()))])
    world = affine @ ijk
    diff = (found @ world - reference @ world)[:3]
    return float(np.sqrt((diff ** 2).sum(axis=0).mean()))


def ncc(a, b, mask):
    """Normalised cross-correlation of two volumes inside a mask."""
    a, b = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom else 0.0


def load_template(path, resolution):
    """Template array and affine, resampled (linear) to `resolution` mm when asked."""
    data, affine = read_volume(path, "template")
    check_not_empty(data, "template", os.path.basename(path))
    if resolution:
        from dipy.align.reslice import reslice

        data, affine = reslice(data, affine, voxel_sizes(affine), (resolution,) * 3, order=1)
    return data, affine


def atlas_on_template(path, template, t_affine):
    """The atlas labels on the template grid (nearest neighbour when the grids differ)."""
    name = os.path.basename(path)
    labels, affine = read_volume(path, "atlas")
    if np.any(labels < 0) or np.any(labels != np.round(labels)):
        raise UserError(f"atlas {name} holds negative or fractional values; give a label "
                        "image (whole numbers, 0 = background)")
    if not same_grid(labels.shape, affine, template.shape, t_affine):
        labels = nearest_on_grid(labels, affine, template.shape, t_affine)
    if not np.any(labels):
        raise UserError(f"atlas {name} has no labels on the template's grid: it does not "
                        "overlap the template")
    return labels


def save_nifti(data, affine, path, dtype=np.float32):
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)
    img.header.set_xyzt_units("mm")
    nib.save(img, path)


def save_field(field, affine, path):
    """A displacement field (x, y, z, 3) as a NIfTI vector image (x, y, z, 1, 3)."""
    img = nib.Nifti1Image(np.asarray(field, np.float32)[:, :, :, None, :], affine)
    img.header.set_intent("vector")
    img.header.set_xyzt_units("mm")
    nib.save(img, path)


def label_dtype(labels):
    top = labels.max()
    return np.uint16 if top < 2 ** 16 else np.uint32 if top < 2 ** 32 else np.uint64


def write_matrix(matrix, path):
    np.savetxt(path, matrix, fmt="%.6f", delimiter=" ",
               header="affine: template world (mm) -> moving world (mm)")


def run(args):
    from . import registration  # dipy takes a second or two to import: only when registering

    started = time.monotonic()
    affine_iters = parse_iterations(args.affine_iterations, "--affine-iterations")
    syn_iters = parse_iterations(args.syn_iterations, "--syn-iterations")
    if args.resolution < 0 or not np.isfinite(args.resolution):
        raise UserError(f"--resolution must be a positive size in mm (or 0), got {args.resolution:g}")
    if args.deformable and not args.warp:
        raise UserError("--deformable needs --warp FILE for the displacement field")
    if (args.warp or args.inverse_warp) and not args.deformable:
        raise UserError("--warp and --inverse-warp need --deformable")
    if bool(args.atlas) != bool(args.labels_out):
        raise UserError("--atlas and --labels-out go together")
    reference = read_matrix(args.reference_transform) if args.reference_transform else None
    name = os.path.basename(args.moving.rstrip("/")) or args.moving
    if args.scale < 0:
        raise UserError(f"--scale must be 0 or more, got {args.scale}")
    moving, m_affine = read_any(args.moving, args.scale,
                                lambda path: read_volume(path, "moving image"))
    check_not_empty(moving, "moving image", name)
    template_path = args.template or default_template()
    template, t_affine = load_template(template_path, args.resolution)
    if args.init == "header":
        check_overlap(template, t_affine, moving, m_affine, name)
    atlas = atlas_on_template(args.atlas, template, t_affine) if args.atlas else None

    matrix = registration.register_affine(template, t_affine, moving, m_affine, affine_iters,
                                          args.init)
    mapping = registration.affine_map(matrix, template, t_affine, moving, m_affine)
    if args.deformable:
        mapping = registration.register_syn(template, t_affine, moving, m_affine, matrix,
                                            syn_iters)
    registered = mapping.transform(moving)
    mask = brain_mask(template)
    if not np.any(registered[mask]):
        raise UserError(f"registration of {name} failed: the result does not overlap the "
                        "template's brain; check that both images show the same object")
    before = registration.affine_map(np.eye(4), template, t_affine, moving, m_affine)
    rows = [("template", os.path.basename(template_path)),
            ("template_shape", " x ".join(map(str, template.shape))),
            ("template_voxel_mm", f"{np.sqrt((t_affine[:3, :3] ** 2).sum(axis=0)).mean():.3f}"),
            ("stages", "affine+syn" if args.deformable else "affine"),
            ("ncc_before", f"{ncc(template, before.transform(moving), mask):.4f}"),
            ("ncc_after", f"{ncc(template, registered, mask):.4f}")]
    if reference is not None:
        rms_mm = transform_rms(matrix, reference, mask, t_affine)
        voxel = float(np.sqrt((t_affine[:3, :3] ** 2).sum(axis=0)).mean())
        rows += [("rms_mm", f"{rms_mm:.3f}"), ("rms_voxels", f"{rms_mm / voxel:.3f}")]

    labels = None
    if atlas is not None:
        labels = np.rint(mapping.transform_inverse(atlas, interpolation="nearest"))
        lost = sorted(set(np.unique(atlas).astype(int)) - set(np.unique(labels).astype(int)))
        if lost:
            print(f"warning: atlas label(s) {', '.join(map(str, lost))} cover no voxel of "
                  f"{name} after the inverse mapping", file=sys.stderr)

    targets = {"registered": (args.output, nifti_suffix(args.output)),
               "transform": (args.transform, ".txt"),
               "warp": (args.warp, nifti_suffix(args.warp or "")),
               "inverse": (args.inverse_warp, nifti_suffix(args.inverse_warp or "")),
               "labels": (args.labels_out, nifti_suffix(args.labels_out or "")),
               "qc": (args.qc, ".png"), "report": (args.report, ".tsv")}
    rows.append(("seconds", f"{time.monotonic() - started:.1f}"))
    with staged(targets) as out:
        save_nifti(registered, t_affine, out["registered"])
        write_matrix(matrix, out["transform"])
        if args.warp:
            save_field(mapping.forward, mapping.disp_grid2world, out["warp"])
        if args.inverse_warp:
            save_field(mapping.backward, mapping.disp_grid2world, out["inverse"])
        if labels is not None:
            save_nifti(labels, m_affine, out["labels"], label_dtype(labels))
        if args.qc:
            write_checkerboard(template, registered, out["qc"], voxel_sizes(t_affine))
        if args.report:
            with open(out["report"], "w", encoding="utf-8") as handle:
                handle.write("measure\tvalue\n")
                handle.writelines(f"{k}\t{v}\n" for k, v in rows)
    print("progress: 100% done", file=sys.stderr)
    summary = dict(rows)
    line = (f"registered {name} to {summary['template']} ({summary['stages']}): NCC in the "
            f"brain mask {summary['ncc_before']} -> {summary['ncc_after']}")
    if reference is not None:
        line += (f"; RMS distance to the reference transform {summary['rms_voxels']} voxels "
                 f"({summary['rms_mm']} mm)")
    print(line)
