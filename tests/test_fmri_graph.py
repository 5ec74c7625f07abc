"""`neurostation graph-metrics`: node and global measures equal networkx on the same
thresholded graph (built here from the matrix independently); threshold rules; GraphML;
matrices that are not square, not symmetric or misnamed are refused."""

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from networkx.algorithms import community as nxc


def random_matrix(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, n)) + rng.normal(size=(40, 1)) * 0.8
    return np.corrcoef(x, rowvar=False)


def write_matrix(path, m, names):
    frame = pd.DataFrame(m, columns=names)
    frame.insert(0, "region", names)
    frame.to_csv(path, sep="\t", index=False, float_format="%.17g")
    return path


def reference_graph(m, names, keep):
    g = nx.Graph()
    g.add_nodes_from(names)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            if keep(a, b):
                g.add_edge(names[a], names[b], weight=m[a, b])
    return g


@pytest.mark.parametrize("rule", ["threshold", "proportion"])
def test_measures_equal_networkx(cli, tmp_path, rule):
    m = random_matrix()
    names = [f"R{k}" for k in range(12)]
    path = write_matrix(tmp_path / "m.tsv", m, names)
    nodes, glob, gml = tmp_path / "nodes.tsv", tmp_path / "global.tsv", tmp_path / "g.graphml"
    if rule == "threshold":
        args, keep = ["--threshold", "0.45"], (lambda a, b: m[a, b] >= 0.45)
    else:
        upper = np.sort(m[np.triu_indices(12, 1)])[::-1]
        cut = upper[int(round(0.25 * len(upper))) - 1]
        args, keep = ["--proportion", "0.25"], (lambda a, b: m[a, b] >= cut)
    res = cli("graph-metrics", path, *args, "--nodes", nodes, "--global", glob, "--graphml", gml)
    assert res.returncode == 0, res.stderr
    g = reference_graph(m, names, keep)
    table = pd.read_csv(nodes, sep="\t").set_index("region")
    assert list(table.index) == names
    assert list(table["degree"]) == [g.degree(n) for n in names]
    np.testing.assert_allclose(table["strength"], [g.degree(n, weight="weight") for n in names],
                               atol=1e-9)
    clust = nx.clustering(g, weight="weight")
    np.testing.assert_allclose(table["clustering"], [clust[n] for n in names], atol=1e-9)
    betw = nx.betweenness_centrality(g)
    np.testing.assert_allclose(table["betweenness"], [betw[n] for n in names], atol=1e-9)
    values = pd.read_csv(glob, sep="\t").set_index("measure")["value"]
    assert values["edges"] == g.number_of_edges()
    assert values["global_efficiency"] == pytest.approx(nx.global_efficiency(g), abs=1e-9)
    comms = nxc.greedy_modularity_communities(g, weight="weight")
    assert values["modularity"] == pytest.approx(nxc.modularity(g, comms, weight="weight"),
                                                 abs=1e-9)
    groups = table.groupby("community").groups
    assert sorted(sorted(v) for v in groups.values()) == sorted(sorted(c) for c in comms)
    if nx.is_connected(g):
        assert values["characteristic_path_length"] == pytest.approx(
            nx.average_shortest_path_length(g), abs=1e-9)
    back = nx.read_graphml(gml)
    assert back.number_of_edges() == g.number_of_edges()
    assert back.nodes["R0"]["community"] == table.loc["R0", "community"]


def test_two_cliques_found_as_communities(cli, tmp_path):
    """Two groups of strongly correlated regions joined by one weak edge."""
    m = np.full((6, 6), 0.05)
    m[:3, :3] = m[3:, 3:] = 0.9
    m[2, 3] = m[3, 2] = 0.4
    np.fill_diagonal(m, 1)
    path = write_matrix(tmp_path / "m.tsv", m, list("ABCDEF"))
    nodes, glob = tmp_path / "n.tsv", tmp_path / "g.tsv"
    res = cli("graph-metrics", path, "--threshold", "0.3", "--nodes", nodes, "--global", glob)
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(nodes, sep="\t")
    assert table["community"].nunique() == 2
    assert table["community"][0] == table["community"][2] != table["community"][3]
    values = pd.read_csv(glob, sep="\t").set_index("measure")["value"]
    assert values["edges"] == 7 and values["components"] == 1


def fails(cli, path, tmp_path):
    res = cli("graph-metrics", path, "--nodes", tmp_path / "n.tsv", "--global", tmp_path / "g.tsv")
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert not (tmp_path / "n.tsv").exists()
    return res.stderr


def test_matrix_not_square(cli, tmp_path):
    m = random_matrix(4)
    path = tmp_path / "m.tsv"
    frame = pd.DataFrame(m[:3], columns=list("ABCD"))
    frame.insert(0, "region", list("ABC"))
    frame.to_csv(path, sep="\t", index=False)
    assert "is not square: 3 rows x 4 columns" in fails(cli, path, tmp_path)


def test_matrix_not_symmetric(cli, tmp_path):
    m = random_matrix(4)
    m[0, 2] += 0.3
    msg = fails(cli, write_matrix(tmp_path / "m.tsv", m, list("ABCD")), tmp_path)
    assert "is not symmetric: (A, C)" in msg


def test_names_mismatch(cli, tmp_path):
    path = write_matrix(tmp_path / "m.tsv", random_matrix(4), list("ABCD"))
    text = path.read_text().splitlines()
    text[0] = "region\tA\tB\tX\tD"
    path.write_text("\n".join(text) + "\n")
    assert "names its rows and columns differently (row 3 is 'C', column 3 is 'X')" in fails(
        cli, path, tmp_path)


def test_negative_weights_kept_are_refused(cli, tmp_path):
    m = -np.abs(random_matrix(5))
    np.fill_diagonal(m, 1)
    path = write_matrix(tmp_path / "m.tsv", m, list("ABCDE"))
    res = cli("graph-metrics", path, "--proportion", "0.5", "--nodes", tmp_path / "n.tsv",
              "--global", tmp_path / "g.tsv")
    assert res.returncode == 2 and "weights <= 0" in res.stderr and "--absolute" in res.stderr
    res = cli("graph-metrics", path, "--proportion", "0.5", "--absolute", "--nodes",
              tmp_path / "n.tsv", "--global", tmp_path / "g.tsv")
    assert res.returncode == 0, res.stderr
    assert pd.read_csv(tmp_path / "g.tsv", sep="\t").set_index("measure")["value"]["edges"] == 5
