"""The result tables as Markdown: the summary with the lecture's story and seed noise, and the optimizer study."""

from mnist_dnn.results.tables import optimizer_headers, percent, seed_noise_table, shown, summary_shown, sweep_shown
from mnist_dnn.stage.numerics import describe


def table_markdown(table, headers=None):
    """``table`` formatted by its column definitions, as a Markdown table."""
    text, _ = shown(table, headers)
    return text.to_markdown(index=False, disable_numparse=True)


def computed_with(numerics):
    """Where the models were computed, in a sentence: ``numerics`` maps variant → its recorded numerics."""
    described = {name: describe(n) for name, n in numerics.items()}
    if len(set(described.values())) == 1:
        return f"Computed with {next(iter(described.values()))}."
    return "Computed with: " + "; ".join(f"{name}: {text}" for name, text in described.items()) + "."


def summary_markdown(table, numerics):
    """The summary as Markdown, accuracies in percent, the lecture's story retold, where it was computed, and the
    seed noise if measured."""
    story = " → ".join(percent(a) for a in table["reproduced_accuracy"])
    text = (
        "# MNIST: the lecture's table, reproduced\n\n"
        + table_markdown(summary_shown(table))
        + f"\n\nReproduced, in the lecture's order: {story}.\n\n{computed_with(numerics)}\n"
    )
    if "mean" not in table:
        return text
    return text + (
        f"\n## Seed noise ({table['seeds'].iloc[0]} seeds per variant)\n\n"
        "Each step of the lecture's story, reproduced as the difference of mean test accuracies over the seeds; "
        "it is beyond the noise when larger than two standard errors of that difference.\n\n"
        + table_markdown(seed_noise_table(table))
        + "\n"
    )


def sweep_markdown(table, variant, seeds):
    """The keep_prob sweep as Markdown: a row per keep_prob, over ``seeds``."""
    return (
        f"# Does dropout help? {variant}'s test accuracy by keep_prob\n\n"
        f"Each keep_prob trained with seeds {', '.join(map(str, seeds))}; keep_prob = 1 is no dropout.\n\n"
        + table_markdown(sweep_shown(table))
        + "\n"
    )


def optimizer_markdown(table, study):
    """The optimizer comparison as Markdown."""
    return f"# The lecture's optimizers on {study.variant}\n\n" + table_markdown(table, optimizer_headers(study)) + "\n"
