"""Autograd graphs: the walk through next_functions, its layered layout, and the SVG."""

import xml.etree.ElementTree as ET

import pytest
import torch

from mnist_dnn.lecture.models import ModelSpec
from mnist_dnn.results import autograd_graph

LECTURE_NODES = [
    ("SumBackward0", ""),
    ("TanhBackward0", ""),
    ("AddBackward0", ""),
    ("MmBackward0", ""),
    ("AccumulateGrad", "W_h 20×20"),
    ("MmBackward0", ""),
    ("AccumulateGrad", "W_x 20×10"),
]


def batch(n=5):
    generator = torch.Generator().manual_seed(0)
    return torch.rand(n, 784, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def names(nodes):
    return [node.name for node in nodes]


def test_the_lecture_snippets_graph_as_pytorch_names_it():
    nodes, edges = autograd_graph.lecture_graph()
    assert [(n.name, n.leaf) for n in nodes] == LECTURE_NODES
    assert sorted(edges) == [(0, 1), (1, 2), (2, 3), (2, 5), (3, 4), (5, 6)]  # x and prev_h need no gradient


def test_a_models_leaves_are_its_parameters_with_their_shapes():
    spec = ModelSpec(variant="v", hidden=(8, 6), init="xavier_uniform", bias_init="pytorch")
    nodes, _ = autograd_graph.model_graph(spec.build(), *batch(), train=True)
    leaves = sorted(node.leaf for node in nodes if node.name == "AccumulateGrad")
    assert leaves == sorted(["0.weight 8×784", "0.bias 8", "2.weight 6×8", "2.bias 6", "4.weight 10×6", "4.bias 10"])
    assert names(nodes)[:3] == ["NllLossBackward0", "LogSoftmaxBackward0", "AddmmBackward0"]
    assert names(nodes).count("AddmmBackward0") == 3 and names(nodes).count("ReluBackward0") == 2


def test_dropouts_graph_is_built_on_the_fly_differently_in_train_and_eval_mode():
    spec = ModelSpec(variant="v", hidden=(8, 8, 8), init="xavier_uniform", dropout_p=0.3, bias_init="pytorch")
    graphs = autograd_graph.variant_graphs(spec, *batch())
    train, evaluation = names(graphs["train"][0]), names(graphs["eval"][0])
    assert train.count("MulBackward0") == 3 and "MulBackward0" not in evaluation
    assert sorted(n for n in train if n != "MulBackward0") == sorted(evaluation)


def test_without_dropout_train_and_eval_graphs_are_the_same():
    spec = ModelSpec(variant="v", hidden=(8,), init="normal", bias_init="normal")
    graphs = autograd_graph.variant_graphs(spec, *batch())
    assert graphs["train"] == graphs["eval"]


def test_layout_puts_every_edge_downwards_and_no_two_nodes_of_a_row_overlap():
    spec = ModelSpec(variant="v", hidden=(8, 8), init="xavier_uniform", dropout_p=0.5, bias_init="pytorch")
    nodes, edges = autograd_graph.model_graph(spec.build(), *batch(), train=True)
    centres, width, height = autograd_graph.layout(nodes, edges)
    assert all(centres[i][1] < centres[j][1] for i, j in edges)
    rows = {}
    for j, (x, y) in centres.items():
        half = autograd_graph.node_width(nodes[j]) / 2
        rows.setdefault(y, []).append((x - half, x + half))
    for spans in rows.values():
        spans.sort()
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
        assert spans[0][0] >= 0 and spans[-1][1] <= width
    assert max(y for _, y in centres.values()) < height


def test_svg_is_well_formed_deterministic_and_names_every_node():
    nodes, edges = autograd_graph.lecture_graph()
    svg = autograd_graph.graph_svg(nodes, edges, "the lecture's snippet", "lecture")
    assert svg == autograd_graph.graph_svg(*autograd_graph.lecture_graph(), "the lecture's snippet", "lecture")
    root = ET.fromstring(svg)
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert len(root.findall("svg:g", ns)) == len(nodes) and len(root.findall("svg:line", ns)) == len(edges)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts.count("MmBackward0") == 2 and "W_h 20×20" in texts and "W_x 20×10" in texts
    assert root.find("svg:defs/svg:marker", ns).get("id") == "arrow_lecture"


@pytest.mark.parametrize("key", ["a", "dnn_dropout_train"])
def test_each_svgs_arrow_id_is_its_own(key):
    svg = autograd_graph.graph_svg(*autograd_graph.lecture_graph(), "t", key)
    assert f'id="arrow_{key}"' in svg and svg.count(f"url(#arrow_{key})") == 6
