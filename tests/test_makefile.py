"""The Makefile: `make help` describes every target in one line."""

import re
import subprocess

from helpers import REPO

RULE = re.compile(r"^([a-z-]+):(?!=)", re.M)


def targets():
    """Every target the Makefile declares .PHONY."""
    text = (REPO / "Makefile").read_text()
    return re.search(r"^\.PHONY: (.+)$", text, re.M).group(1).split()


def test_every_rule_is_phony_and_make_help_describes_each_in_one_line():
    rules = RULE.findall((REPO / "Makefile").read_text())
    assert sorted(rules) == sorted(targets())
    listed = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.splitlines()
    described = {line.split()[0]: line.split(maxsplit=1)[1] for line in listed}
    assert set(described) == set(targets())
    assert all(description.strip() for description in described.values())

