"""`neurostation pyramid`: add the missing resolution scales to a volume, or copy it into a
new volume with another chunk size or encoding, pyramid included (e.g. raw -> jpeg to view)."""

from ..chunks.pool import add_parallel_arguments, resolve_jobs
from ..errors import UserError
from ..io.precomputed import (ENCODINGS, check_encoding, create_volume, open_complete, read_record,
                              resolve_volume, to_url)
from ..units import parse_xyz
from .scales import cumulative, plan_factors
from .write import VolumeSource, write_pyramid


def add_parser(subparsers):
    p = subparsers.add_parser(
        "pyramid", help="build the resolution pyramid of a volume, or re-chunk / re-encode it",
        description="Without -o: replace the coarser scales of a volume by a full pyramid built "
        "from its full resolution (images averaged, labels by mode), in place. With -o: write "
        "a new volume with the chosen chunk size and encoding and its whole pyramid.",
        epilog="example: neurostation pyramid ./labels   |   neurostation pyramid ./raw -o ./view "
        "--encoding jpeg",
    )
    p.add_argument("volume", help="precomputed folder, volume URL or JSON reference")
    p.add_argument("-o", "--output", help="write a new volume here instead of in place")
    p.add_argument("--chunk-size", help="X,Y,Z chunk size of the new volume (default: the source's)")
    p.add_argument("--encoding", choices=ENCODINGS, help="encoding of the new volume (default: the source's)")
    p.add_argument("--levels", type=int, help="number of downsampled scales (default: until x and y fit one chunk)")
    add_parallel_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args):
    jobs = resolve_jobs(args.jobs)
    src_url = resolve_volume(args.volume)
    vol = open_complete(src_url)
    info, scale0 = vol.info, vol.info["scales"][0]
    shape = tuple(int(n) for n in scale0["size"])
    if any(scale0.get("voxel_offset", [0, 0, 0])):
        raise UserError("volumes with a non-zero voxel_offset are not supported yet")
    in_place = args.output is None
    if in_place and (args.chunk_size or args.encoding):
        raise UserError("--chunk-size and --encoding make a new volume: give -o OUTPUT")
    chunk = (tuple(int(v) for v in parse_xyz(args.chunk_size, "--chunk-size")) if args.chunk_size
             else tuple(int(n) for n in scale0["chunk_sizes"][0]))
    chunk = tuple(min(c, n) for c, n in zip(chunk, shape))
    encoding = args.encoding or scale0["encoding"]
    check_encoding(encoding, info["data_type"], info["num_channels"], info["type"])
    resolution = [float(r) for r in scale0["resolution"]]
    factors = plan_factors(shape, resolution, chunk, args.levels)
    dst_url = src_url if in_place else to_url(args.output)
    record = dict(read_record(src_url) or {})
    record.pop("complete", None)
    history = list(record.pop("history", [])) + [record.pop("command", "unknown")]
    create_volume(dst_url, shape, info["data_type"], resolution, num_channels=info["num_channels"],
                  layer_type=info["type"], encoding=encoding, chunk_size=chunk,
                  factors=cumulative(factors)[1:])
    params = {"source": src_url, "chunk": chunk, "encoding": encoding, "factors": factors}
    write_pyramid(VolumeSource(src_url, 0), dst_url, shape, info["data_type"], info["num_channels"],
                  chunk, factors, info["type"], jobs, params,
                  {**record, "command": "pyramid", "history": history}, write_source=not in_place)
