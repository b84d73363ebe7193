"""Fixtures: a child process under the bad-input caps; the small run of the pipeline, trained once per test run; and the
servers that the sharing tests need (on 127.0.0.1 only, each stopped when its tests end) with their figures."""

import os

# pytest-xdist's workers share the cores: each worker's torch, and the stages it starts, get their share of them
# (threads change no bit under the portable numerics). Set before anything imports torch.
if (workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))

import mnist_dnn  # noqa: E402, F401, I001  it sets the portable CPU numerics before anything imports torch

import importlib.util
import json
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from filelock import FileLock
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from helpers import (
    CUT_VARIANTS,
    MEMORY_CAP,
    SMALL_RUN,
    TIME_CAP,
    commit,
    copy_project,
    cut_variants,
    edit_yaml,
    run,
)


def pytest_collection_modifyitems(items):
    """The order pytest-xdist's workers take the tests in (the Makefile turns its reordering off): first the largest
    group, whose worker trains `trained_project` while the other workers run the tests that need no pipeline; then the
    other groups (all end-to-end), the largest first; then the end-to-end tests of no group."""

    def group(item):
        marker = item.get_closest_marker("xdist_group")
        return marker and (marker.kwargs.get("name") or marker.args[0])

    size = Counter(group(item) for item in items if group(item))
    first = max(size, key=size.get, default=None)

    def rank(item):
        if group(item):
            return (0, 0) if group(item) == first else (2, -size[group(item)])
        return (3, 0) if item.get_closest_marker("e2e") else (1, 0)

    items.sort(key=rank)  # stable: each module's tests stay in their order


def _cap_memory():
    # RLIMIT_DATA caps the heap and private mappings, not the address space that torch's libraries reserve.
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_CAP, MEMORY_CAP))


@pytest.fixture
def outside_repo(tmp_path, monkeypatch):
    """Run the test in its tmp_path: dvclive writes and deletes signal files in the DVC repository that holds the
    working directory, and two workers' Live in the project's own .dvc/tmp would race."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def run_capped(tmp_path):
    """Run ``python -c code *args`` in ``tmp_path`` under 1.5 GB of memory and 30 s; its CompletedProcess."""

    def run(code, *args, env=None):
        return subprocess.run(
            [sys.executable, "-c", code, *map(str, args)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIME_CAP, preexec_fn=_cap_memory,
        )

    return run


def made_once(tmp_path_factory, worker_id, name, make):
    """The folder ``name``/mnist-dnn of this test run, made by ``make(folder)`` once per run: the first pytest-xdist
    worker to ask makes it while the others wait on a file lock (pytest-xdist's recipe)."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the run's folder, above each worker's own
    root = shared / name / "mnist-dnn"
    with FileLock(shared / f"{name}.lock"):
        if not (root.parent / "done").is_file():
            shutil.rmtree(root.parent, ignore_errors=True)  # what a worker that failed here left
            root.mkdir(parents=True)
            make(root)
            (root.parent / "done").touch()
    return root


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory, worker_id):
    """This project with the small run's params (helpers.SMALL_RUN), committed in a fresh git repo, after
    `dvc repro` on real MNIST: its folder and the repro's output. Trained once per test run; each test module copies
    the folder and works in its copy.

    MNIST comes from $MNIST_MIRROR when it is set (CI sets it to ../shared/mnist), else from the public mirrors.
    """

    def make(root):
        copy_project(root)
        edit_yaml(root / "params.yaml", SMALL_RUN)
        run(["git", "init", "-q"], root)
        commit(root, "the small run")
        (root.parent / "repro.out").write_text(run(["dvc", "repro"], root))

    root = made_once(tmp_path_factory, worker_id, "trained", make)
    return root, (root.parent / "repro.out").read_text()


@pytest.fixture(scope="session")
def cut_project(trained_project, tmp_path_factory, worker_id):
    """The trained project cut to helpers.CUT_VARIANTS and one optimizer, its table, study and report made again from
    the trained stages (restored, not retrained), its seed noise 1 pp per variant, committed: a whole pipeline of 10
    stages, for the tests that run all of it again (make verify's, `mnist-dnn repro`'s)."""

    def make(root):
        shutil.copytree(trained_project[0], root, symlinks=True, dirs_exist_ok=True)
        cut_variants(root, CUT_VARIANTS, ["adam"])
        noise = json.loads((root / "metrics/seed_noise.json").read_text())  # whole rows: the report checks them
        rows = [dict(row, std=0.01) for row in noise if row["variant"] in CUT_VARIANTS]
        (root / "metrics/seed_noise.json").write_text(json.dumps(rows))
        run(["dvc", "repro", "-q"], root)  # only what the cut touches: the table, the study's and the report
        commit(root, "the small run, cut")

    return made_once(tmp_path_factory, worker_id, "cut", make)


@pytest.fixture(scope="session")
def prepared_clone(trained_project, tmp_path_factory, worker_id):
    """A git clone of the trained project as it was before its `dvc repro`, in whose cache `dvc repro prepare` left
    the data and prepared splits, then removed from the workspace: where a first run that stopped after them left."""

    def make(root):
        run(["git", "clone", "-q", str(trained_project[0]), str(root)], root.parent)
        run(["dvc", "repro", "prepare"], root)
        shutil.rmtree(root / "data")

    return made_once(tmp_path_factory, worker_id, "prepared", make)


# ---- servers for tests/test_sharing.py --------------------------------------------------------------------

FIGURES = {}  # name -> value, printed at the end of the run (seconds of pushes and pulls, stages rerun)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("sharing: measured figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def figures():
    return FIGURES


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(cmd, url, log_path, timeout=60):
    """Run the server ``cmd`` for the duration of the block, once ``url`` answers; stop it after."""
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with open(log_path, "wb") as log:
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                no_proxy.open(url, timeout=2).close()
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{' '.join(cmd)} did not answer at {url}:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.2)
        yield server
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """A boto3 client of a real S3-compatible server (moto's standalone server) on 127.0.0.1, with test credentials
    in the environment that DVC's subprocesses inherit."""
    for module, package in (("moto.server", "moto[server]"), ("flask", "moto[server]"), ("dvc_s3", "dvc-s3")):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{package} is not installed: `make test` installs it (pip install -e '.[test,s3]')")
    import boto3

    folder = tmp_path_factory.mktemp("s3-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(folder / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
        }.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        with serving(cmd, url, folder / "server.log"):
            yield boto3.client("s3", endpoint_url=url)


@pytest.fixture(scope="session")
def http_folder(tmp_path_factory):
    """``http_folder(folder)``: serve ``folder`` read-only with Python's http.server on 127.0.0.1, until the session
    ends; returns its URL."""
    with pytest.MonkeyPatch.context() as env, ExitStack() as stack:
        env.setenv("NO_PROXY", "127.0.0.1")
        env.setenv("no_proxy", "127.0.0.1")

        def serve(folder):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(folder), str(port)]
            stack.enter_context(serving(cmd, url, tmp_path_factory.mktemp("http-server") / "server.log"))
            return url

        yield serve


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900",
]


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium and chromium-driver, which `make test` installs (its `browser` target)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run `make browser` (apt-get install chromium chromium-driver)")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def browser(chromium, tmp_path):
    """A headless Chromium driven by Selenium, with a fresh profile."""
    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for arg in [*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(chromium[1]), options=options)
    yield driver
    driver.quit()
