"""`neurostation view`: a Neuroglancer state and link for volumes, or a local viewer (--serve).

Link mode writes a standard Neuroglancer JSON state (for Galaxy's viewer or any Neuroglancer)
and a link to a public Neuroglancer carrying it, for collaborators outside Galaxy; every volume
must then be at a URL a browser reads (http(s)://, s3://, gs://). --serve shows local volumes:
it serves them and the bundled client on 127.0.0.1 until Ctrl-C.
"""

import json
import os
import signal
import sys
from pathlib import Path

from ..errors import UserError
from ..io.outputs import staged
from .serve import start_server, volume_url
from .state import check_voxel_sizes, layer, make_link, viewer_state
from .volumes import BROWSER_SCHEMES, contrast, read_volume

DEFAULT_VIEWER = "https://neuroglancer-demo.appspot.com/"
# The client bundle of a repository checkout (scripts/build-viewer links it there).
CHECKOUT_CLIENT = Path(__file__).resolve().parents[3] / "visualizations" / "neuroglancer" / "static" / "dist"


def add_parser(subparsers):
    p = subparsers.add_parser(
        "view", help="make a Neuroglancer viewer link, or view volumes locally (--serve)",
        description="Write a Neuroglancer JSON state (axes, position and zoom from the first "
        "volume; image layers with a contrast from the 1st-99th percentile of their coarsest "
        "scale; segmentation layers detected from the volume's info) and a link to a public "
        "Neuroglancer carrying it. Volumes: URLs a browser reads (http(s)://, s3://, gs://, "
        "precomputed:// allowed) or JSON references {\"url\": ...}; local folders only with "
        "--public-url or --serve. A second image volume is a coloured overlay.",
        epilog="example: neurostation view s3://bucket/brain gs://bucket/labels -o state.json; "
        "local viewer: neurostation view --serve ./volume ./labels",
    )
    p.add_argument("volumes", nargs="*", metavar="VOLUME",
                   help="precomputed folder, volume URL or JSON reference; layers in this order")
    p.add_argument("--segmentation", action="append", default=[], metavar="VOLUME",
                   help="a further volume shown as a segmentation layer whatever its info says "
                   "(repeatable)")
    p.add_argument("--segments", metavar="IDS",
                   help="segment ids to select in the segmentation layers, e.g. 1,2,3")
    p.add_argument("--name", action="append", default=[], metavar="NAME",
                   help="layer name, once per volume in layer order (default: the folder name)")
    p.add_argument("--public-url", action="append", nargs=2, default=[], metavar=("VOLUME", "URL"),
                   help="read VOLUME here but have the browser load it from URL (e.g. where a "
                   "server publishes the same folder)")
    p.add_argument("--viewer-url", default=DEFAULT_VIEWER,
                   help=f"the Neuroglancer the link opens (default: {DEFAULT_VIEWER})")
    p.add_argument("-o", "--output", help="write the JSON state here")
    p.add_argument("--link", help="write the link here (one line); it is printed as well")
    serve = p.add_argument_group("local viewer")
    serve.add_argument("--serve", action="store_true",
                       help="serve the volumes and the bundled Neuroglancer on 127.0.0.1, print "
                       "the URL and run until Ctrl-C; logs each request as 'GET <path> <status>'")
    serve.add_argument("--port", type=int, default=0, help="port for --serve (default 0: a free port)")
    serve.add_argument("--client", help="folder of the Neuroglancer client bundle (default: "
                       "$NS_VIEWER_CLIENT, else the checkout's visualizations/neuroglancer/static/dist)")
    p.set_defaults(func=run)
    return p


def parse_segments(text):
    if not text:
        return []
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        ids = [-1]
    if not ids or any(i <= 0 for i in ids):
        raise UserError(f"--segments must be positive integer ids like 1,2,3, got {text!r}")
    return ids


def client_folder(option):
    """The client bundle folder, checked: it must hold the built index.html and viewer.js."""
    folder = option or os.environ.get("NS_VIEWER_CLIENT") or str(CHECKOUT_CLIENT)
    if not all(os.path.isfile(os.path.join(folder, f)) for f in ("index.html", "viewer.js")):
        raise UserError(f"no Neuroglancer client bundle in {folder}: run scripts/build-viewer "
                        "in a NeuroStation checkout, or give --client DIR (or NS_VIEWER_CLIENT)")
    return folder


def _volumes(args):
    """(Volume, forced layer type or None) for every layer, in order, with unique names."""
    specs = [(v, None) for v in args.volumes] + [(v, "segmentation") for v in args.segmentation]
    if not specs:
        raise UserError("no volumes given")
    if args.name and len(args.name) != len(specs):
        raise UserError(f"--name given {len(args.name)} times for {len(specs)} volumes")
    volumes, seen = [], set()
    for i, (spec, forced) in enumerate(specs):
        vol = read_volume(spec, args.name[i] if args.name else None)
        base, n = vol.name, 2
        while vol.name in seen:  # Neuroglancer needs unique layer names
            vol.name, n = f"{base} ({n})", n + 1
        seen.add(vol.name)
        volumes.append((vol, forced or vol.info["type"]))
    check_voxel_sizes([vol for vol, _ in volumes])
    return volumes


def browser_sources(args, volumes):
    """The URL the browser loads each volume from (link mode): --public-url, else its own."""
    public = {}
    for spec, url in args.public_url:
        if url.split("://", 1)[0] not in ("http", "https"):
            raise UserError(f"--public-url {url} must be an http:// or https:// URL")
        public[spec] = url.rstrip("/")
    specs = args.volumes + args.segmentation
    unknown = set(public) - set(specs)
    if unknown:
        raise UserError(f"--public-url names {sorted(unknown)[0]}, which is not one of the volumes")
    sources = []
    for spec, (vol, _) in zip(specs, volumes):
        url = public.get(spec, vol.url)
        if url.split("://", 1)[0] not in BROWSER_SCHEMES:
            raise UserError(f"{spec} is at {url}, which a browser cannot open: publish it "
                            "(http(s)://, s3://, gs://), give --public-url, or view it "
                            "locally with --serve")
        sources.append(url)
    return sources


def build_state(volumes, sources, segments):
    layers, images = [], 0
    for (vol, kind), source in zip(volumes, sources):
        if kind == "image":
            layers.append(layer(vol, source, "image", contrast(vol), overlay=images))
            images += 1
        else:
            layers.append(layer(vol, source, "segmentation", segments=segments))
    return viewer_state(volumes[0][0], layers)


def write_outputs(args, state, link):
    targets = {"state": (args.output, ".json"), "link": (args.link, ".txt")}
    with staged(targets) as temps:
        if "state" in temps:
            with open(temps["state"], "w") as handle:
                json.dump(state, handle, indent=1)
                handle.write("\n")
        if "link" in temps:
            with open(temps["link"], "w") as handle:
                handle.write(link + "\n")


def run(args):
    segments = parse_segments(args.segments)
    if args.serve:
        return serve(args, segments)
    if args.viewer_url.split("://", 1)[0] not in ("http", "https"):
        raise UserError(f"--viewer-url {args.viewer_url} must be an http:// or https:// URL")
    volumes = _volumes(args)
    sources = browser_sources(args, volumes)
    state = build_state(volumes, sources, segments)
    link = make_link(args.viewer_url, state)
    write_outputs(args, state, link)
    print(link)


def _stop(signum, frame):
    """SIGTERM stops the server as Ctrl-C does."""
    raise KeyboardInterrupt


def serve(args, segments):
    """Serve local volumes and the client; volumes at browser URLs are loaded from there."""
    client = client_folder(args.client)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is not a port number (0-65535)")
    volumes = _volumes(args)
    for vol, _ in volumes:
        if not vol.is_local and vol.url.split("://", 1)[0] not in BROWSER_SCHEMES:
            raise UserError(f"{vol.url} is neither a local folder nor a URL a browser can open")
    try:
        server = start_server(client, [vol.folder for vol, _ in volumes if vol.is_local], args.port)
    except OSError as exc:
        raise UserError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    sources, served = [], 0
    for vol, _ in volumes:  # local folders are served in order; the rest load from their URL
        sources.append(volume_url(server, served) if vol.is_local else vol.url)
        served += vol.is_local
    state = build_state(volumes, sources, segments)
    host, port = server.server_address[:2]
    link = make_link(f"http://{host}:{port}/", state)
    write_outputs(args, state, link)
    print(f"Neuroglancer: {link}", flush=True)
    print("serving; press Ctrl-C to stop", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
