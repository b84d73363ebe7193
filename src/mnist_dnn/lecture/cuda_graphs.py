"""CUDA graphs of training steps: the static buffers they read, and epochs run as replays of one recorded graph."""

import warnings
from contextlib import contextmanager

import torch

from mnist_dnn.lecture.optimizers import is_capturable
from mnist_dnn.stage.device import cuda_graphs_requested

# Steps per CUDA graph: a tenth of an epoch of 550 steps, so that recording costs a tenth of a whole epoch's (about
# 1 s per variant, docs/performance.md) and the eager warm-up before it is 50 steps, for 11 replays per epoch.
GRAPH_STEPS = 50


class Permutations:
    """Each epoch's order of ``n`` samples, drawn from a CPU generator seeded by ``seed`` (the same order on every
    device) into one static buffer on ``device``, through pinned memory on CUDA, so that CUDA graphs can read it."""

    def __init__(self, n, seed, device):
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(n, dtype=torch.long, device=device)
        self.staged = torch.empty(n, dtype=torch.long, pin_memory=self.order.is_cuda)

    def refill(self):
        """The next epoch's order, in the static buffer.

        The copy is asynchronous; the caller syncs once per epoch (the loss), before ``staged`` is written again.
        """
        torch.randperm(len(self.order), generator=self.generator, out=self.staged)
        return self.order.copy_(self.staged, non_blocking=True)


class GraphedEpoch:
    """Runs an epoch's steps as replays of one CUDA graph of ``graph_steps`` steps, and any steps left over eagerly.

    ``eager(order, first=0)`` runs the steps on the mini-batches of ``batch_size`` indices of ``order``, numbered from
    ``first``; they repeat every ``period`` step numbers, of which ``graph_steps`` must be a multiple, so that each
    replay runs the steps it stands for. The graph reads its mini-batches from a static buffer of ``graph_steps``
    batches' indices, refilled from the epoch's order before each replay. The first ``graph_steps`` steps of the run
    are run eagerly on a side stream before the capture, as PyTorch asks (they create cuBLAS workspaces and the
    optimizer's state), and are real steps of the first epoch: recording changes nothing in what is computed. Dropout
    masks are drawn inside the graph from the default CUDA generator, whose state the capture registers.
    """

    def __init__(self, eager, batch_size, graph_steps, generators, period):
        if graph_steps % period:
            raise ValueError(f"graph_steps {graph_steps}: not a multiple of {period}, the steps' period")
        self.eager, self.batch_size, self.graph_steps = eager, batch_size, graph_steps
        self.generators = generators  # generators besides the default one that the steps draw from
        self.batches = None  # the static buffer, made from the first chunk
        self.replay = None

    def __call__(self, order):
        span = self.graph_steps * self.batch_size
        graphed = len(order) // span * span
        for start in range(0, graphed, span):
            chunk = order[start : start + span]
            if self.replay is None:
                self.batches = chunk.clone()
                self.replay = self.capture()
            else:
                self.batches.copy_(chunk)
                self.replay()
        self.eager(order[graphed:], first=graphed // self.batch_size)

    def run_batches(self):
        """The steps on the static buffer's batches."""
        self.eager(self.batches)

    def capture(self):
        """Run the static buffer's steps eagerly on a side stream, then record them; return the graph's replay."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.run_batches()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            graph.register_generator_state(generator)
        with torch.cuda.graph(graph, stream=side):
            self.run_batches()
        return graph.replay


def default_graph_steps(on_cuda, optimizer):
    """GRAPH_STEPS on CUDA when ``$MNIST_DNN_CUDA_GRAPHS`` asks for graphs and ``optimizer``'s step can be recorded,
    else 0: every step eager."""
    return GRAPH_STEPS if on_cuda and cuda_graphs_requested() and is_capturable(optimizer) else 0


@contextmanager
def uncaptured_steps_quiet():
    """Silence the warning of an optimizer built capturable for graphs (as on CUDA) when it steps eagerly: in eager
    epochs, in a graph's warm-up and in the steps left over."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This instance was constructed with capturable=True")
        yield
