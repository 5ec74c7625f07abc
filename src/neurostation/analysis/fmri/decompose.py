"""`neurostation decompose`: spatial ICA (scikit-learn FastICA) or PCA of a 4D series inside a
brain mask -> component maps (4D NIfTI, the series' affine) and time courses (TSV)."""

import os
import sys
import warnings

import nibabel as nib
import numpy as np

from ...errors import UserError
from ...io.nifti import load_series
from ...io.outputs import nifti_suffix, staged
from .masks import brain_mask


def add_parser(subparsers):
    p = subparsers.add_parser(
        "decompose", help="spatial ICA or PCA of a 4D series inside a brain mask",
        description="Decompose a 4D series into components: the voxel time series inside a "
        "brain mask (given, or computed with nilearn's compute_epi_mask) are centred over time "
        "(and scaled to unit variance with --standardize); spatial ICA (scikit-learn FastICA, "
        "voxels as samples: independent maps, their time courses are the mixing matrix) or PCA "
        "(time points as samples: maps are the principal axes, time courses the scores). "
        "Each component's sign is chosen so its largest map value is positive. Deterministic "
        "for a given --seed.",
        epilog="example: neurostation decompose sub-01_task-rest_bold.nii.gz --method ica "
        "--components 20 --seed 0 --maps ica_maps.nii.gz --timecourses ica_timecourses.tsv",
    )
    p.add_argument("series", help="4D NIfTI series (x, y, z, time), at least 3 time points")
    p.add_argument("--maps", required=True,
                   help="component maps to write: 4D NIfTI (x, y, z, component), 0 outside the mask")
    p.add_argument("--timecourses", required=True, metavar="TSV",
                   help="component time courses to write: one row per volume, one column per "
                   "component")
    p.add_argument("--method", choices=("ica", "pca"), default="ica",
                   help="spatial ICA (default) or PCA")
    p.add_argument("--components", type=int, default=10, help="number of components (default 10)")
    p.add_argument("--mask", help="brain mask (3D NIfTI, non-zero inside; another grid is "
                   "resampled with nearest neighbour); default: computed from the series")
    p.add_argument("--standardize", action="store_true",
                   help="scale each voxel's series to unit variance before decomposing")
    p.add_argument("--seed", type=int, default=0, help="random seed of FastICA (default 0)")
    p.add_argument("--max-iter", type=int, default=1000,
                   help="FastICA iterations at most (default 1000)")
    p.set_defaults(func=run)
    return p


def masked_matrix(data, mask, standardize=False):
    """(time, voxel) matrix of the series inside the mask, each voxel centred over time."""
    matrix = np.asarray(data[mask], np.float64).T
    matrix -= matrix.mean(axis=0)
    if standardize:
        std = matrix.std(axis=0)
        matrix /= np.where(std > 0, std, 1)
    return matrix


def spatial_ica(matrix, components, seed, max_iter):
    """(maps (component, voxel), time courses (time, component)) by FastICA on voxels."""
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    ica = FastICA(n_components=components, random_state=seed, whiten="unit-variance",
                  max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        maps = ica.fit_transform(matrix.T).T
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        print(f"warning: FastICA did not converge in {max_iter} iterations; the components "
              "may be unstable (raise --max-iter or lower --components)", file=sys.stderr)
    return maps, ica.mixing_


def pca(matrix, components):
    """(maps (component, voxel), time courses (time, component)) by PCA on time points."""
    from sklearn.decomposition import PCA

    model = PCA(n_components=components, svd_solver="full")
    scores = model.fit_transform(matrix)
    return model.components_, scores, model.explained_variance_ratio_


def orient(maps, courses):
    """Flip each component so that its largest absolute map value is positive."""
    signs = np.sign(maps[np.arange(len(maps)), np.abs(maps).argmax(axis=1)])
    signs[signs == 0] = 1
    return maps * signs[:, None], courses * signs[None, :]


def write_timecourses(path, courses, prefix):
    names = [f"{prefix}{i + 1}" for i in range(courses.shape[1])]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\t".join(["volume"] + names) + "\n")
        for number, row in enumerate(courses):
            handle.write("\t".join([str(number)] + [f"{v:.9g}" for v in row]) + "\n")


def run(args):
    img = load_series(args.series)
    name = os.path.basename(args.series)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated data surfaces here
        raise UserError(f"cannot read the voxels of {name}: {exc}") from None
    mask = brain_mask(nib.Nifti1Image(data, img.affine), args.mask)
    voxels, t = int(mask.sum()), img.shape[3]
    if not 1 <= args.components <= min(voxels, t):
        raise UserError(f"--components must be between 1 and {min(voxels, t)} (the smaller of "
                        f"{t} time points and {voxels} mask voxels of {name}), got "
                        f"{args.components}")
    if args.max_iter < 1:
        raise UserError(f"--max-iter must be positive, got {args.max_iter}")
    matrix = masked_matrix(data, mask, args.standardize)
    if not np.any(matrix):
        raise UserError(f"every voxel series of {name} inside the mask is constant; nothing to "
                        "decompose")
    if args.method == "ica":
        maps, courses = spatial_ica(matrix, args.components, args.seed, args.max_iter)
        explained = None
    else:
        maps, courses, explained = pca(matrix, args.components)
    maps, courses = orient(maps, courses)
    volume = np.zeros(img.shape[:3] + (args.components,), np.float32)
    volume[mask] = maps.T
    out_img = nib.Nifti1Image(volume, img.affine)
    out_img.header.set_xyzt_units(img.header.get_xyzt_units()[0])
    targets = {"maps": (args.maps, nifti_suffix(args.maps)), "tc": (args.timecourses, ".tsv")}
    with staged(targets) as out:
        nib.save(out_img, out["maps"])
        write_timecourses(out["tc"], courses, "IC" if args.method == "ica" else "PC")
    line = (f"{args.method.upper()} of {name}: {args.components} component(s) from {voxels} "
            f"mask voxels x {t} time points")
    if explained is not None:
        line += f"; explained variance {100 * explained.sum():.1f}%"
    print(line)
