"""The result tables that README.md and docs/*.md copy from the pipeline's Markdown outputs.

A copy is a line ``<!-- copied from PATH … -->`` (``… from PATH, table N …`` for PATH's N-th table; PATH from the
repository root) followed by the table. ``python -m mnist_dnn.results.doc_tables`` (``make docs``) copies every table
again from its source; tests/test_docs.py checks that they are equal. The prose around them quotes no figure that
the committed tables do not hold (``unsourced_figures``).
"""

import re
from pathlib import Path

from mnist_dnn.errors import UserError
from mnist_dnn.stage.runtime import run_stage

MARKER = re.compile(r"<!-- copied from ([^\s,]+)(?:, table (\d+))?")
# A figure that prose quotes: a percentage or percentage points (a range of them too), or a "± std".
FIGURE = re.compile(r"\d+\.\d+(?:[–-]\d+\.\d+)?\s?(?:%|pp\b)|±\s?\d+\.\d+")
NUMBER = re.compile(r"\d+\.\d+")
RESULT_TABLES = ("metrics/*.md", "metrics/sweeps/*.md")


def doc_files(root):
    """README.md (where there is one) and docs/*.md under ``root``."""
    return [*Path(root).glob("README.md"), *sorted(Path(root, "docs").glob("*.md"))]


def tables(text):
    """The Markdown tables in ``text``, each as its list of lines."""
    found, table = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            found.append(table)
            table = []
    return found


def copies(text):
    """Each copy in ``text``: its source path, the table's number there (from 1), and the slice of its lines."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if match := MARKER.search(line):
            end = i + 1
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            yield match[1], int(match[2] or 1), slice(i + 1, end)


def source_table(root, path, number):
    """Table ``number`` of the Markdown file ``path`` under ``root``, as its list of lines."""
    try:
        return tables(Path(root, path).read_text())[number - 1]
    except (OSError, IndexError):
        raise UserError(f"{path}: no table {number} to copy") from None


def copied_again(text, root):
    """``text`` with each copy replaced by its source's table as it is now."""
    lines = text.splitlines()
    for path, number, where in reversed(list(copies(text))):
        lines[where] = source_table(root, path, number)
    return "\n".join(lines) + "\n"


def prose(text):
    """``text`` without its code blocks, HTML comments and copied tables."""
    lines = text.splitlines()
    for _, _, where in copies(text):
        lines[where] = [""] * len(lines[where])
    return re.sub(r"^```.*?^```|<!--.*?-->", "", "\n".join(lines), flags=re.S | re.M)


def unsourced_figures(root, lecture):
    """Each (doc, figure) where README.md or docs/*.md quotes a figure that no committed result table under ``root``
    holds and that is not one of the ``lecture``'s accuracies (fractions)."""
    held = {f"{100 * accuracy:.2f}" for accuracy in lecture}
    for pattern in RESULT_TABLES:
        held.update(number for path in sorted(Path(root).glob(pattern)) for number in NUMBER.findall(path.read_text()))
    return [(doc.relative_to(root).as_posix(), figure) for doc in doc_files(root)
            for figure in FIGURE.findall(prose(doc.read_text())) if not set(NUMBER.findall(figure)) <= held]


def main(root="."):
    for doc in doc_files(root):
        text = doc.read_text()
        if (new := copied_again(text, root)) != text:
            doc.write_text(new)
            print(f"{doc}: tables copied again")


if __name__ == "__main__":
    run_stage(main)
