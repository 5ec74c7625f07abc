"""`neurostation graph-metrics`: a connectivity matrix thresholded into a weighted graph, and
its node and global measures computed with networkx; the graph itself as GraphML."""

import os
import sys

import numpy as np
import pandas as pd

from ...errors import UserError
from ...io.outputs import staged_file
from .tables import read_matrix, write_frame


def add_parser(subparsers):
    p = subparsers.add_parser(
        "graph-metrics", help="threshold a connectivity matrix into a graph and measure it",
        description="Turn a connectivity matrix (TSV from `connectivity`) into an undirected "
        "weighted graph of the regions — keeping edges whose weight is at least a value, or "
        "the strongest proportion of edges — and measure it with networkx. Per node: degree "
        "(edges), strength (sum of weights), weighted clustering (networkx, geometric mean of "
        "weights normalised by the largest), betweenness centrality (normalised, on hop "
        "counts). Global: efficiency and characteristic path length (on hop counts; the path "
        "length averages over connected pairs), modularity of the communities found by "
        "greedy modularity maximisation (weighted), number of connected components. "
        "The diagonal is ignored; the weights kept must be positive (use --absolute for "
        "anticorrelations).",
        epilog="example: neurostation graph-metrics matrix.tsv --proportion 0.2 --nodes "
        "nodes.tsv --global global.tsv --graphml graph.graphml",
    )
    p.add_argument("matrix", help="square symmetric matrix TSV: first column region names, "
                   "then one column per region (as written by connectivity)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--threshold", type=float, metavar="VALUE",
                     help="keep edges whose weight is at least VALUE (e.g. 0.3)")
    how.add_argument("--proportion", type=float, metavar="P",
                     help="keep the strongest proportion P of edges, in (0, 1] (default 0.2 "
                     "when --threshold is not given)")
    p.add_argument("--absolute", action="store_true",
                   help="use absolute values: negative correlations count by their strength")
    p.add_argument("--nodes", required=True, metavar="TSV",
                   help="node table to write: region, degree, strength, clustering, "
                   "betweenness, community")
    p.add_argument("--global", dest="global_", required=True, metavar="TSV",
                   help="global table to write: measure, value")
    p.add_argument("--graphml", metavar="FILE",
                   help="also write the thresholded graph as GraphML (node attributes: the "
                   "node table's columns; edge attribute: weight)")
    p.set_defaults(func=run)
    return p


def threshold(names, m, value=None, proportion=None, absolute=False):
    """The undirected weighted networkx graph kept by the threshold rule (all regions as nodes)."""
    import networkx as nx

    w = np.abs(m) if absolute else m
    i, j = np.triu_indices(len(names), k=1)
    weights = w[i, j]
    if value is not None:
        keep = np.flatnonzero(weights >= value)
    else:
        count = int(round(proportion * len(weights)))
        keep = np.argsort(-weights, kind="stable")[:count]
    if np.any(weights[keep] <= 0):
        raise UserError("the edges kept include weights <= 0; raise the threshold, keep a "
                        "smaller proportion, or use --absolute")
    graph = nx.Graph()
    graph.add_nodes_from(names)
    graph.add_weighted_edges_from((names[i[k]], names[j[k]], float(weights[k])) for k in keep)
    return graph


def measure(graph):
    """(node table, global table, community of each node) of a weighted graph."""
    import networkx as nx
    from networkx.algorithms import community as nxc

    nodes = list(graph.nodes)
    if graph.number_of_edges():
        groups = nxc.greedy_modularity_communities(graph, weight="weight")
        modularity = nxc.modularity(graph, groups, weight="weight")
    else:
        groups, modularity = [{n} for n in nodes], float("nan")
    community = {n: k + 1 for k, group in enumerate(groups) for n in group}
    clustering = nx.clustering(graph, weight="weight")
    betweenness = nx.betweenness_centrality(graph, normalized=True)
    table = pd.DataFrame({
        "region": nodes,
        "degree": [graph.degree(n) for n in nodes],
        "strength": [graph.degree(n, weight="weight") for n in nodes],
        "clustering": [clustering[n] for n in nodes],
        "betweenness": [betweenness[n] for n in nodes],
        "community": [community[n] for n in nodes],
    })
    lengths = [d for _, dist in nx.all_pairs_shortest_path_length(graph)
               for d in dist.values() if d > 0]
    glob = pd.DataFrame({"measure": [
        "nodes", "edges", "density", "components", "global_efficiency",
        "characteristic_path_length", "modularity", "communities"], "value": [
        graph.number_of_nodes(), graph.number_of_edges(), nx.density(graph),
        nx.number_connected_components(graph), nx.global_efficiency(graph),
        float(np.mean(lengths)) if lengths else float("nan"), modularity, len(groups)]})
    return table, glob, community


def run(args):
    import networkx as nx

    names, m = read_matrix(args.matrix)
    if len(names) < 2:
        raise UserError(f"the matrix {os.path.basename(args.matrix)} has {len(names)} region; "
                        "a graph needs at least 2")
    proportion = args.proportion
    if args.threshold is None and proportion is None:
        proportion = 0.2
    if proportion is not None and not 0 < proportion <= 1:
        raise UserError(f"--proportion must be in (0, 1], got {proportion:g}")
    graph = threshold(names, m, args.threshold, proportion, args.absolute)
    table, glob, _ = measure(graph)
    if args.graphml:
        for row in table.itertuples(index=False):
            graph.nodes[row.region].update(
                degree=int(row.degree), strength=float(row.strength),
                clustering=float(row.clustering), betweenness=float(row.betweenness),
                community=int(row.community))
        with staged_file(args.graphml) as tmp:
            nx.write_graphml(graph, tmp)
    write_frame(args.nodes, table)
    write_frame(args.global_, glob)
    print(f"graph of {graph.number_of_nodes()} regions and {graph.number_of_edges()} edges, "
          f"{int(glob.value[3])} component(s)", file=sys.stderr)
