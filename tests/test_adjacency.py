"""`neurostation adjacency`: face contacts and contact areas equal a numpy reference (shifted
arrays compared in memory) on a volume read in many small boxes, serial and with a process
pool; the GraphML holds every object and every contact; the test data's known pairs give
their exact areas; bad input stops with one line and no output."""

from collections import Counter

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from label_synth import VOXEL_UM, partition, small_boxes, write_ome  # noqa: F401

from neurostation.cli import main


def reference_contacts(labels_zyx):
    """{(a, b): [faces across x, y, z]} from the whole array in memory."""
    xyz = np.transpose(labels_zyx, (2, 1, 0))
    found = {}
    for axis in range(3):
        a = np.moveaxis(xyz, axis, 0)[:-1].ravel()
        b = np.moveaxis(xyz, axis, 0)[1:].ravel()
        touch = (a != b) & (a != 0) & (b != 0)
        for pair, n in Counter(zip(np.minimum(a, b)[touch].tolist(),
                                   np.maximum(a, b)[touch].tolist())).items():
            found.setdefault(pair, [0, 0, 0])[axis] = n
    return found


@pytest.mark.parametrize("jobs", [1, 2])
def test_equals_numpy_reference(small_boxes, tmp_path, jobs):  # noqa: F811
    labels = partition((11, 17, 21), 30, seed=4)
    path = write_ome(tmp_path / "labels.ome.tif", labels)
    out, gml = tmp_path / "edges.tsv", tmp_path / "graph.graphml"
    assert main(["adjacency", path, "-o", str(out), "--graphml", str(gml),
                 "--jobs", str(jobs)]) == 0
    table = pd.read_csv(out, sep="\t")
    expected = reference_contacts(labels)
    assert len(expected) > 50
    assert list(zip(table["label_a"], table["label_b"])) == sorted(expected)
    sx, sy, sz = VOXEL_UM
    for row in table.itertuples():
        fx, fy, fz = expected[(row.label_a, row.label_b)]
        assert row.contact_faces == fx + fy + fz
        assert row.contact_area_um2 == pytest.approx(fx * sy * sz + fy * sx * sz + fz * sx * sy,
                                                     rel=1e-10)
    graph = nx.read_graphml(gml, node_type=int)
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    assert sorted(graph.nodes) == ids.tolist()
    assert [graph.nodes[i]["voxel_count"] for i in ids.tolist()] == counts.tolist()
    assert graph.number_of_edges() == len(expected)
    a, b = sorted(expected)[0]
    assert graph.edges[a, b]["contact_faces"] == sum(expected[(a, b)])


def test_known_contacts(data, cli, tmp_path):
    out, gml = tmp_path / "edges.tsv", tmp_path / "graph.graphml"
    result = cli("adjacency", data("objects_labels.ome.tif"), "-o", out, "--graphml", gml)
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == [
        "label_a\tlabel_b\tcontact_faces\tcontact_area_um2", "1\t2\t6\t6", "3\t7\t6\t1.5"]
    graph = nx.read_graphml(gml, node_type=int)
    assert sorted(graph.nodes) == [1, 2, 3, 7]
    assert graph.nodes[3]["volume_um3"] == 72.0


def test_precomputed_labels(data, small_boxes, tmp_path):  # noqa: F811
    """labels_vol: segments 1 | 2 | 3 side by side in x, 12 x 4 faces of 0.25 x 1 µm each
    (boxes of 5 x 4 x 3 voxels across its 8 x 8 x 2 chunks)."""
    out = tmp_path / "edges.tsv"
    assert main(["adjacency", data("labels_vol"), "-o", str(out)]) == 0
    assert out.read_text().splitlines()[1:] == ["1\t2\t48\t12", "2\t3\t48\t12"]


def test_empty_volume_gives_no_edges(data, cli, tmp_path):
    out, gml = tmp_path / "edges.tsv", tmp_path / "graph.graphml"
    result = cli("adjacency", data("objects_empty.ome.tif"), "-o", out, "--graphml", gml)
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == ["label_a\tlabel_b\tcontact_faces\tcontact_area_um2"]
    assert nx.read_graphml(gml).number_of_nodes() == 0


@pytest.mark.parametrize("name, message", [
    ("objects_float.ome.tif", "holds float32 values; a label volume holds integers"),
    ("broken_info_vol", "broken_info_vol"),
    ("not_an_image.txt", "not_an_image.txt"),
])
def test_bad_input(data, cli, tmp_path, name, message):
    out, gml = tmp_path / "edges.tsv", tmp_path / "graph.graphml"
    result = cli("adjacency", data(name), "-o", out, "--graphml", gml)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []
