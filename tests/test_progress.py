"""What `mnist-dnn repro` shows while stages run: bars on a terminal, plain lines elsewhere."""

import io

from rich.console import Console

from mnist_dnn.tools.progress import StageProgress

EPOCH = "epoch   2: train loss 0.398361 (after each step 0.392432), val accuracy 0.8872"


def test_without_a_terminal_each_epoch_and_end_is_a_line_of_its_own_and_other_output_is_not(capsys):
    with StageProgress(2, 15, Console(file=io.StringIO())) as display:
        display.started("train@dnn")
        display.started("prepare")
        display.line("train@dnn", "Running stage 'train@dnn':")
        display.line("train@dnn", EPOCH)
        display.ended("train@dnn", "[1/2] train@dnn: ran")
    assert capsys.readouterr().out == f"train@dnn: {EPOCH}\n[1/2] train@dnn: ran\n"


def test_on_a_terminal_a_stage_bar_counts_its_epochs_and_ends_with_its_line_above_the_bars(capsys):
    screen = io.StringIO()
    with StageProgress(2, 15, Console(file=screen, force_terminal=True, width=120)) as display:
        display.started("train@dnn")
        display.line("train@dnn", EPOCH)
        [bar] = [task for task in display.progress.tasks if task.description == "train@dnn"]
        assert (bar.completed, bar.total) == (2, 15)
        display.ended("train@dnn", "[1/2] train@dnn: ran")
        assert [task.description for task in display.progress.tasks] == ["all stages"]
        assert display.progress.tasks[0].completed == 1
    assert "[1/2] train@dnn: ran" in screen.getvalue() and capsys.readouterr().out == ""
