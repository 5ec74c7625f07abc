"""`neurostation adjacency`: the contact graph of a label volume — which objects touch
across a face (6-connectivity) and the contact area of each pair — as an edge table and a
GraphML file, chunk-wise (memory: a box plus one row per label and per touching pair)."""

import shutil
import tempfile

import networkx as nx
import numpy as np
import pandas as pd

from ...chunks.pool import resolve_jobs, run_tasks
from ...io.outputs import staged
from ..fmri.tables import write_frame
from .contacts import box_contacts, merge_contacts
from .grouping import Batches
from .inputs import add_common_options, label_boxes, open_labels, voxel_size


def add_parser(subparsers):
    p = subparsers.add_parser(
        "adjacency", help="build the contact graph of a label volume (touching objects, "
        "contact areas)",
        description="Find which objects (labels > 0) of a label volume (TIFF ZYX, OME-TIFF, "
        "NIfTI-1, precomputed folder, URL or JSON reference) touch across a voxel face "
        "(6-connectivity) and how much: the number of shared faces and the contact area (faces "
        "x the face's physical area: y*z for faces between x neighbours, and so on). Writes an "
        "edge table (label_a < label_b) and a GraphML graph whose nodes are all labels (with "
        "voxel count and volume; isolated objects too) and whose edges carry the contacts. "
        "Read box by box, contacts across box borders included.",
        epilog="example: neurostation adjacency cells.ome.tif -o contacts.tsv "
        "--graphml contacts.graphml",
    )
    p.add_argument("input", metavar="LABELS", help="label volume")
    p.add_argument("-o", "--output", required=True, help="the edge table (TSV) to write")
    p.add_argument("--graphml", help="also write the graph as GraphML")
    p.add_argument("--name", help="name of the input in messages (default: its file name)")
    add_common_options(p)
    p.set_defaults(func=run)
    return p


class _BoxTask:
    """Contacts of one box (picklable)."""

    def __init__(self, source):
        self.source = source

    def __call__(self, box):
        return box_contacts(self.source, box)


def contact_graph(source, jobs):
    """The merged Contacts of a whole label volume."""
    batches = Batches(merge_contacts, len)
    for part in run_tasks(_BoxTask(source), label_boxes(source), jobs,
                          desc=f"finding contacts in {source.name}"):
        batches.add(part)
    return batches.result()


def edge_table(contacts, spacing, unit):
    """label_a, label_b, contact_faces, contact_area_<unit>2 per touching pair."""
    sx, sy, sz = spacing
    face_area = np.array([sy * sz, sx * sz, sx * sy])
    return pd.DataFrame({
        "label_a": contacts.pairs[:, 0].astype(np.uint64),
        "label_b": contacts.pairs[:, 1].astype(np.uint64),
        "contact_faces": contacts.faces.sum(axis=1),
        f"contact_area_{unit}2": contacts.faces @ face_area,
    })


def graph(contacts, edges, spacing, unit):
    """The networkx graph: every label a node (voxel_count, volume), every contact an edge."""
    g = nx.Graph()
    volume = float(np.prod(spacing))
    for label, voxels in zip(contacts.labels.tolist(), contacts.voxels.tolist()):
        g.add_node(int(label), voxel_count=int(voxels), **{f"volume_{unit}3": voxels * volume})
    for row in edges.itertuples(index=False):
        g.add_edge(int(row[0]), int(row[1]), contact_faces=int(row[2]),
                   **{f"contact_area_{unit}2": float(row[3])})
    return g


def run(args):
    jobs = resolve_jobs(args.jobs)
    workdir = tempfile.mkdtemp(prefix="neurostation-adjacency-")
    try:
        source = open_labels(args.input, workdir, args.name)
        spacing = voxel_size(source, args.voxel_size, args.unit)
        contacts = contact_graph(source, jobs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    edges = edge_table(contacts, spacing, args.unit)
    with staged({"table": (args.output, ".tsv"), "graphml": (args.graphml, ".graphml")}) as temps:
        write_frame(temps["table"], edges)
        if args.graphml:
            nx.write_graphml(graph(contacts, edges, spacing, args.unit), temps["graphml"])
    print(f"{source.name}: {len(contacts.labels)} objects, {len(edges)} touching pairs; wrote "
          f"{args.output}" + (f" and {args.graphml}" if args.graphml else ""))
