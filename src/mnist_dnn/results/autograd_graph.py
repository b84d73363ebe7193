"""Autograd graphs: walk ``loss.grad_fn`` through ``next_functions``, lay the nodes out in layers, draw them as SVG.

The graph is the one PyTorch built on the fly during the forward pass; nodes carry PyTorch's own names
(``AddmmBackward0``, ``TanhBackward0``, ``AccumulateGrad``…) and each leaf its tensor's name and shape.
"""

import html
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CHAR_WIDTH, NODE_HEIGHT, H_GAP, V_GAP, MARGIN = 7, 34, 14, 26, 6  # SVG layout, in pixels


@dataclass(frozen=True)
class Node:
    name: str  # the grad_fn's class name, e.g. AddmmBackward0
    leaf: str = ""  # for AccumulateGrad: the leaf tensor's name and shape, e.g. "W_h 20×20"


def walk(loss, names):
    """The autograd graph behind ``loss``: its nodes, root first, in the order a depth-first walk meets them, and its
    edges (i, j) from node i to node j of i's ``next_functions``. ``names`` maps id(leaf tensor) → its name."""
    index, nodes, edges = {}, [], []

    def visit(fn):
        if fn in index:
            return index[fn]
        index[fn] = len(nodes)
        leaf = getattr(fn, "variable", None)
        label = "" if leaf is None else f"{names.get(id(leaf), 'tensor')} {'×'.join(map(str, leaf.shape))}"
        nodes.append(Node(type(fn).__name__, label))
        i = index[fn]
        for next_fn, _ in fn.next_functions:
            if next_fn is not None:  # None: an input that needs no gradient
                edges.append((i, visit(next_fn)))
        return i

    visit(loss.grad_fn)
    return nodes, edges


def lecture_graph():
    """The graph of the lecture's snippet: one step of an RNN cell and its loss, walked before ``backward()`` runs."""
    generator = torch.Generator().manual_seed(0)
    W_h = torch.randn(20, 20, requires_grad=True, generator=generator)
    W_x = torch.randn(20, 10, requires_grad=True, generator=generator)
    x = torch.randn(1, 10, generator=generator)
    prev_h = torch.randn(1, 20, generator=generator)
    next_h = (W_h @ prev_h.T + W_x @ x.T).tanh()
    loss = next_h.sum()
    graph = walk(loss, {id(W_h): "W_h", id(W_x): "W_x"})
    loss.backward()  # as the lecture does; the walk above needs none of the values it frees
    return graph


def model_graph(model, inputs, targets, train):
    """The graph of ``model``'s cross-entropy loss on one batch, in train or eval mode; leaves by parameter name."""
    model.train(train)
    loss = F.cross_entropy(model(inputs), targets)
    return walk(loss, {id(p): name for name, p in model.named_parameters()})


def variant_graphs(spec, inputs, targets):
    """The graphs of a fresh model of ``spec`` (a ModelSpec) on one batch, in train and in eval mode."""
    model = spec.build()
    return {mode: model_graph(model, inputs, targets, train=mode == "train") for mode in ("train", "eval")}


def layers(nodes, edges):
    """Each node's layer: its longest distance from the root (node 0), so that every edge points downwards."""
    depth = [0] * len(nodes)
    children = {i: [j for a, j in edges if a == i] for i in range(len(nodes))}
    for i in _topological(children, len(nodes)):
        for j in children[i]:
            depth[j] = max(depth[j], depth[i] + 1)
    return depth


def _topological(children, n):
    order, seen = [], set()

    def visit(i):
        seen.add(i)
        for j in children[i]:
            if j not in seen:
                visit(j)
        order.append(i)

    for i in range(n):
        if i not in seen:
            visit(i)
    return order[::-1]


def node_width(node):
    return CHAR_WIDTH * max(len(node.name), len(node.leaf)) + 16


def layout(nodes, edges):
    """Node centres (x, y) and the drawing's width and height: one row per layer, each row centred, its nodes
    ordered by the mean x of their parents (the order in which the walk met them breaks ties)."""
    depth = layers(nodes, edges)
    rows = [[] for _ in range(max(depth) + 1)]
    for i, d in enumerate(depth):
        rows[d].append(i)
    parents = {j: [i for i, k in edges if k == j] for j in range(len(nodes))}
    x, widths = {}, []
    for row in rows:
        row.sort(key=lambda j: (sum(x[i] for i in parents[j]) / len(parents[j]) if parents[j] else 0, j))
        start = 0
        for j in row:
            x[j] = start + node_width(nodes[j]) / 2
            start += node_width(nodes[j]) + H_GAP
        widths.append(start - H_GAP)
    width = max(widths) + 2 * MARGIN
    centres = {}
    for row, row_width in zip(rows, widths):
        shift = (width - row_width) / 2
        for j in row:
            centres[j] = (round(x[j] + shift), MARGIN + depth[j] * (NODE_HEIGHT + V_GAP) + NODE_HEIGHT // 2)
    height = len(rows) * (NODE_HEIGHT + V_GAP) - V_GAP + 2 * MARGIN
    return centres, width, height


def graph_svg(nodes, edges, title, key):
    """The graph as an inline SVG: the root on top, arrows along ``next_functions`` (the way backward() runs),
    leaves (AccumulateGrad) shaded with their tensor's name and shape. ``key`` makes its ids unique in a page."""
    centres, width, height = layout(nodes, edges)
    half = NODE_HEIGHT // 2
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{round(width)}" height="{height}" '
        f'viewBox="0 0 {round(width)} {height}" font-family="monospace" font-size="12" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<defs><marker id="arrow_{key}" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#777"/></marker></defs>',
    ]
    for i, j in edges:
        (x1, y1), (x2, y2) = centres[i], centres[j]
        lines.append(f'<line x1="{x1}" y1="{y1 + half}" x2="{x2}" y2="{y2 - half}" stroke="#777" '
                     f'marker-end="url(#arrow_{key})"/>')
    for j, node in enumerate(nodes):
        x, y = centres[j]
        w = node_width(node)
        fill = "#dcebf7" if node.leaf else "#f3f3f3"
        lines.append(f'<g class="node"><rect x="{x - w / 2:g}" y="{y - half}" width="{w}" height="{NODE_HEIGHT}" '
                     f'rx="4" fill="{fill}" stroke="#888"/>')
        if node.leaf:
            lines.append(f'<text x="{x}" y="{y - 3}" text-anchor="middle">{node.name}</text>'
                         f'<text x="{x}" y="{y + 11}" text-anchor="middle">{html.escape(node.leaf)}</text>')
        else:
            lines.append(f'<text x="{x}" y="{y + 4}" text-anchor="middle">{node.name}</text>')
        lines.append("</g>")
    lines.append("</svg>")
    return "\n".join(lines)
