"""README.md and docs/: every copied table equals its source, every relative link leads to a file, and the README
stays a first screen."""

import json
import re

import pytest

from helpers import REPO
from mnist_dnn import paths
from mnist_dnn.errors import UserError
from mnist_dnn.results import doc_tables, report_picture

DOCS = doc_tables.doc_files(REPO)
IDS = [doc.relative_to(REPO).as_posix() for doc in DOCS]
SOURCE = """# A result

| a | b |
|---|---|
| 1 | 2 |

Text between.

| step | c |
|------|---|
| x    | 3 |
"""


def links(text):
    """The targets of the Markdown links and images in ``text``, outside code blocks."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"\]\(([^)\s]+)\)", prose)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_copied_table_equals_its_source(doc):
    text = doc.read_text()
    for path, number, where in doc_tables.copies(text):
        copy = text.splitlines()[where]
        assert copy == doc_tables.source_table(REPO, path, number), f"table {number} of {path} changed: `make docs`"


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_relative_link_leads_to_a_file(doc):
    relative = [target.split("#")[0] for target in links(doc.read_text()) if not re.match(r"[a-z]+:|#", target)]
    missing = [target for target in relative if not (doc.parent / target).exists()]
    assert missing == []


def test_the_readme_is_a_first_screen_with_the_table_the_picture_and_both_commands():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert [path for path, _, _ in doc_tables.copies(readme)] == ["metrics/summary.md"]
    assert "docs/report.png" in links(readme)
    first = readme.index("![")  # what it is, the commands and the table come before any picture
    assert 0 < readme.index("make repro") < readme.index("make test") < readme.index("| variant") < first


def test_readme_and_reproducibility_name_the_committed_runs_cpu_vendor():
    vendors = {numerics.get("cpu_vendor") for numerics in json.loads((REPO / paths.NUMERICS).read_text()).values()}
    [vendor] = vendors
    name, other = {"AuthenticAMD": ("AMD", "Intel"), "GenuineIntel": ("Intel", "AMD")}[vendor]
    assert f"An {name} CPU (the committed run's vendor" in (REPO / "README.md").read_text()
    assert f"byte for byte on an {name} x86-64 CPU" in (REPO / "README.md").read_text()
    page = (REPO / "docs/reproducibility.md").read_text()
    assert f"({other} against the committed {name} run)" in page and f"The committed run is an {name} " in page


def test_the_readme_picture_is_the_first_screen_of_the_committed_report():
    shown = report_picture.source_digest(REPO / report_picture.PICTURE)
    assert shown == report_picture.sha256(REPO / paths.REPORT), \
        "docs/report.png shows another report than metrics/report.html: `make results` makes both again"


def test_the_docs_copy_tables_and_link_files():  # the checks above have something to check
    text = "\n".join(doc.read_text() for doc in DOCS)
    assert len(list(doc_tables.copies(text))) >= 5 and len(links(text)) >= 10


def test_make_docs_copies_each_table_again_from_its_source(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "metrics/result.md").write_text(SOURCE)
    marker = "<!-- copied from metrics/result.md, table 2, which a stage writes -->"
    stale = f"# Doc\n\n{marker}\n| step | c |\n| old | 0 |\n\nEnd.\n"
    (tmp_path / "docs/page.md").write_text(stale)
    (tmp_path / "README.md").write_text("<!-- copied from metrics/result.md -->\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    readme = (tmp_path / "README.md").read_text()
    doc_tables.main(tmp_path)
    assert (tmp_path / "docs/page.md").read_text() == stale.replace(
        "| step | c |\n| old | 0 |\n", "| step | c |\n|------|---|\n| x    | 3 |\n"
    )
    assert (tmp_path / "README.md").read_text() == readme  # already equal: left alone


def test_a_copy_of_a_table_that_is_not_there_is_a_user_error(tmp_path):
    (tmp_path / "result.md").write_text(SOURCE)
    with pytest.raises(UserError, match=r"^result.md: no table 3 to copy$"):
        doc_tables.copied_again("<!-- copied from result.md, table 3 -->\n| a |\n", tmp_path)
    with pytest.raises(UserError, match=r"^gone.md: no table 1 to copy$"):
        doc_tables.copied_again("<!-- copied from gone.md -->\n| a |\n", tmp_path)
