"""`mnist-dnn repro --jobs N`: the stages of `dvc repro`, each in its own copy of the workspace as a Ray task as soon as
its upstream stages are done, at most N at once, on this machine or a Ray cluster.

DVC decides what runs and caches every result; Ray decides where each stage runs; the DVC cache (on this machine) or
remote (on a cluster) carries the results back, and a last `dvc repro` in the workspace restores them all.
"""

import contextlib
import ctypes
import io
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
from dvc.exceptions import DvcException
from dvc.repo import Repo
from ruamel.yaml import YAML

from mnist_dnn import paths
from mnist_dnn.errors import UserError, one_line, quote, shorten
from mnist_dnn.stage.files import atomic_outputs
from mnist_dnn.stage.runtime import Interrupted
from mnist_dnn.stage.watchdog import PR_SET_PDEATHSIG
from mnist_dnn.tools.dvc_internals import Config
from mnist_dnn.tools.progress import EPOCH_LINE, StageProgress

COPIES = Path(".dvc/tmp/repro")  # the copies of a run on this machine, under the workspace (ignored by git and DVC)
MAX_OVERRIDE = 4000  # characters of one -S assignment: a list of seeds fits, a value nested past Python's stack not
SESSIONS = "mnist-dnn-ray-"  # Ray's session folders of embedded runs, in the system's temp folder
# Each run's copies and Ray session folder are named "<owner pid>-…", so that its watchdog, or a later run, removes
# what a killed one left, and ends the processes still working in them.
KILL_ROUNDS = 10  # end_and_remove's rounds of ending them: Ray may start a worker again while its others are ended
LOGS = Path(".dvc/tmp/repro-logs")  # each stage's output in the last run that ran it, failed ones included


def plan(root, targets):
    """The stages that ``dvc repro targets`` considers, upstream first, each with the ones among them it needs; and
    the stages left to the last `dvc repro` (all outputs `cache: false`: the run-cache keeps nothing of them)."""
    with contextlib.chdir(root), Repo(".") as repo:  # DVC reads targets relative to the current folder
        graph = repo.index.graph  # an edge runs from a stage to a stage whose outputs it reads
        chosen = [s for t in targets for s in matching(repo, t)] if targets else list(graph)
        nodes = set(chosen).union(*(nx.descendants(graph, stage) for stage in chosen))
        position = {stage: i for i, stage in enumerate(repo.index.stages)}  # dvc.yaml's order among ready stages
        order = list(nx.lexicographical_topological_sort(graph.subgraph(nodes).reverse(), key=position.get))
        last = {stage for stage in order if stage.outs and not any(out.use_cache for out in stage.outs)}
        last |= {stage for stage in order if any(nx.has_path(graph, stage, other) for other in last)}
        tasks = [(stage.addressing, {up.addressing for up in graph.successors(stage)} - {s.addressing for s in last})
                 for stage in order if stage not in last]
        return tasks, [stage.addressing for stage in order if stage in last]


def matching(repo, target):
    """The stages of ``repo`` that ``target`` names (a name, ``file:name`` or a glob); a UserError if none, as
    `dvc repro` refuses such a target."""
    try:
        stages = repo.stage.collect(target, glob=True)
    except DvcException as err:
        raise UserError(f"{shorten(target)}: {shorten(err, 200)}") from None
    if not stages:
        raise UserError(f"{shorten(target)}: no stage of dvc.yaml has this name (see `dvc stage list`)")
    return stages


def up_to_date(root, tasks):
    """The stages of ``tasks`` (upstream first) that `dvc repro` in the workspace at ``root`` would skip: unchanged,
    as `dvc status` sees them, and so are all their upstream ones."""
    try:
        with contextlib.chdir(root), Repo(".") as repo, repo.lock:  # as `dvc status` holds it
            stages = {stage.addressing: stage for stage in repo.index.stages}
            skipped = set()
            for name, upstream in tasks:
                if upstream <= skipped and not stages[name].changed():
                    skipped.add(name)
            return skipped
    except DvcException as err:  # another DVC command holds the workspace
        raise UserError(f"dvc status: {one_line(err)}") from None


def plan_copy(root, files, targets):
    """:func:`plan` for the workspace as the snapshot ``files`` has it (params set), in a copy under ``root``."""
    (root / COPIES).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{os.getpid()}-plan.", dir=root / COPIES) as copy:
        unpack(files, copy)
        configure_copy(copy, None, {})
        return plan(Path(copy), targets)


def snapshot(root, params=None):
    """The workspace's files that git would see (tracked, and untracked ones it does not ignore, uncommitted changes
    included) as tar bytes, with ``params`` (bytes) in place of params.yaml if given: what each copy starts from."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                           capture_output=True, check=True).stdout.decode().split("\0")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in names:
            if name == "params.yaml" and params is not None:
                info = tar.gettarinfo(root / name, arcname=name)
                info.size = len(params)
                tar.addfile(info, io.BytesIO(params))
            elif name and (root / name).is_file():
                tar.add(root / name, arcname=name)
    return buffer.getvalue()


def unpack(files, folder):
    """Write the snapshot ``files`` (tar bytes) out into ``folder``."""
    with tarfile.open(fileobj=io.BytesIO(files)) as tar:
        tar.extractall(folder, filter="data")


def set_params(path, assignments):
    """The bytes of the params file at ``path`` with ``assignments`` applied by the parser and code of
    `dvc exp run -S` (Hydra's override grammar: ``key=value``, ``params.yaml:key=value``, ``+key=value``, ``~key``)."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides

    long = [a for a in assignments if len(a) > MAX_OVERRIDE]
    if long:
        raise UserError(f"-S {shorten(long[0])}: {len(long[0]):,} characters, over the {MAX_OVERRIDE:,} allowed")
    overrides = to_path_overrides(assignments)
    other = sorted(set(overrides) - {path.name})
    if other:
        raise UserError(f"-S {shorten(other[0])}:…: only {path.name} can be set here")
    with tempfile.TemporaryDirectory() as folder:
        edited = Path(folder, path.name)
        shutil.copyfile(path, edited)
        try:
            apply_overrides(edited, overrides.get(path.name, []))
        except (DvcException, RecursionError) as err:
            why = err.__cause__ or (err if isinstance(err, DvcException) else "a value nested too deeply")
            raise UserError(f"-S {shorten(' -S '.join(assignments))}: {shorten(why, 240)}") from None
        return edited.read_bytes()


def configure_copy(copy, cache_dir, remotes):
    """Make the folder ``copy`` a DVC project without git that uses the cache ``cache_dir`` (None: its own) and the
    workspace's ``remotes`` (its merged config: .dvc/config.local does not travel)."""
    with Config(dvc_dir=os.path.join(copy, ".dvc")).edit("local") as config:
        config["core"]["no_scm"] = True
        config["cache"]["type"] = "reflink,hardlink,copy"
        if cache_dir is not None:
            config["cache"]["dir"] = str(cache_dir)
        config["remote"].update(remotes)


def run_in(copy, cmd, env, on_line=None):
    """Run ``cmd`` in ``copy`` in its own process group, which dies with this process, giving ``on_line`` each line
    as it comes; its output, or a CalledProcessError holding it."""
    process = subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace", start_new_session=True, preexec_fn=_die_with_parent)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if on_line is not None:
                on_line(line.rstrip())
        process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
        process.stdout.close()
    output = "".join(lines)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, cmd, output)
    return output


def _die_with_parent():
    """In the child, before it runs: SIGTERM when the task that started it dies (a lost node, a cancelled task)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True)
class Run:
    """What every stage task of one `mnist-dnn repro` shares, besides the workspace's files."""

    remotes: dict  # the workspace's DVC remotes (remote_config)
    root: str  # the workspace
    host: str  # the workspace's machine
    run_id: str  # names the run's copies
    jobs: int  # stages at once
    via_remote: bool
    force: bool


def stage_task(name, files, entries, run, lines):
    """Run stage ``name`` of the ``run`` with `dvc repro` in a new copy of the workspace (the tar bytes ``files``, its
    dvc.lock given the ``entries`` of the stages done so far), putting its epoch lines on the Ray queue ``lines`` as
    they come; its result, with its output and the copy's dvc.lock entry for the stage.

    On the workspace's machine the copy lives under it and shares its DVC cache. Elsewhere, or ``via_remote``, the
    copy has its own cache and meets the others at the DVC remote: `mnist-dnn pull-run-cache` first, `push-run-cache`
    after."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    local = not run.via_remote and socket.gethostname() == run.host and Path(run.root).is_dir()
    start = time.monotonic()
    parent = Path(run.root, COPIES, run.run_id) if local else None
    copy, output = None, ""

    def forward(line):
        if EPOCH_LINE.match(line):
            lines.put((name, line))

    try:
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        copy = tempfile.mkdtemp(prefix=f"{node[:8]}-{file_name(name)}.", dir=parent)
        unpack(files, copy)
        update_lock(Path(copy, "dvc.lock"), entries)
        configure_copy(copy, Path(run.root, ".dvc/cache") if local else None, run.remotes)
        env = dict(os.environ, PYTHONPATH="src", OMP_NUM_THREADS=str(stage_threads(run.jobs)), DVC_NO_ANALYTICS="1",
                   PYTHONUNBUFFERED="1",  # each epoch line as it is printed
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")  # this dvc, python
        mnist_dnn = [sys.executable, "-m", "mnist_dnn.cli"]
        run_in(copy, [*mnist_dnn, "pull-run-cache"] if not local else ["dvc", "checkout", "--allow-missing"], env)
        output = run_in(copy, ["dvc", "repro", *(["--force", "--single-item"] if run.force else []), name], env,
                        forward)
        if not local:
            run_in(copy, [*mnist_dnn, "push-run-cache"], env)
        ran = f"Running stage '{name}'" in output
        return {"stage": name, "node": node, "seconds": time.monotonic() - start, "ran": ran, "error": None,
                "output": output, "lock": lock_entries(Path(copy, "dvc.lock"))[name]}
    except subprocess.CalledProcessError as failed:
        return {"stage": name, "node": node, "seconds": time.monotonic() - start, "ran": True,
                "error": error_line(failed.output, failed.returncode), "output": output + failed.output, "lock": None}
    except OSError as err:  # a full disk, a read-only workspace: the copy cannot be made
        why = f"cannot make its copy of the workspace in {parent or tempfile.gettempdir()}: {err.strerror or err}"
        return {"stage": name, "node": node, "seconds": time.monotonic() - start, "ran": False, "error": why,
                "output": output, "lock": None}
    finally:
        if copy is not None:
            shutil.rmtree(copy, ignore_errors=True)


def file_name(stage):
    """``stage``'s name as part of a file name."""
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", stage)


def stage_threads(jobs):
    """The CPU threads each stage gets where ``jobs`` of them run at once on this machine: a share of its cores."""
    return max(1, len(os.sched_getaffinity(0)) // jobs)


def lock_entries(path):
    """The stage entries of the dvc.lock at ``path``; none if there is no such file."""
    return YAML(typ="safe").load(path)["stages"] if path.exists() else {}


def update_lock(path, entries):
    """Put the stage ``entries`` (from the copies' dvc.lock) in the dvc.lock at ``path`` wherever it has another
    entry for that stage, in place. An entry made elsewhere (a lock committed from another CPU) names outputs no cache
    here has: `dvc repro` would run the stage again rather than restore the copy's run from the run-cache."""
    if not path.exists():
        return
    yaml = YAML()
    lock = yaml.load(path)
    changed = {name: entry for name, entry in entries.items() if lock["stages"].get(name, entry) != entry}
    if changed:
        lock["stages"].update(changed)
        with atomic_outputs(path) as (new,):
            yaml.dump(lock, new)


def error_line(output, status):
    """Why a stage failed, from its ``output``: the stage's last ``error:`` line, else DVC's last ``ERROR:`` line,
    else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    ours, dvcs = ([line for line in lines if line.startswith(prefix)] for prefix in ("error: ", "ERROR: "))
    line = (ours or dvcs or lines or [f"exit status {status}"])[-1]
    return one_line(re.sub(r"^(error|ERROR): ", "", line))[:300]


def end_and_remove(folders):
    """End every other process working in one of ``folders`` (named on its command line, or in it), then remove
    them."""
    import psutil

    names = [str(folder) for folder in folders]
    for _ in range(KILL_ROUNDS):  # until none is left
        working = []
        for process in psutil.process_iter(["cmdline", "cwd"]):
            args, cwd = process.info["cmdline"] or (), process.info["cwd"] or ""
            if process.pid != os.getpid() and any(cwd.startswith(name) or any(name in arg for arg in args)
                                                  for name in names):
                working.append(process)
        if not working:
            break
        for process in working:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(working, timeout=10)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def remove_leftovers(root):
    """Remove the copies under ``root`` and the Ray session folders that runs killed before their end left (their
    owner's pid is gone), ending any process still working in them."""
    import psutil

    gone = []
    for folder in [*(root / COPIES).glob("*"), *Path(tempfile.gettempdir()).glob(f"{SESSIONS}*")]:
        owner = folder.name.removeprefix(SESSIONS).split("-")[0]
        if owner.isdigit() and not psutil.pid_exists(int(owner)):
            gone.append(folder)
    if gone:
        end_and_remove(gone)
        print(f"removed what killed runs left: {', '.join(sorted(folder.name for folder in gone))}")


def clean_after(pid, *folders):
    """Wait for the run ``pid`` to end, however it ends (SIGKILL too), then end the processes still working in
    ``folders`` and remove them: the watchdog of ``watch_over``."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(int(pid)).wait()
    left = [Path(folder) for folder in folders if Path(folder).exists()]
    if left:
        end_and_remove(left)


def watch_over(folders):
    """A process of its own that cleans up ``folders`` (clean_after) once this one has died; kill it at a clean end."""
    code = "import sys; from mnist_dnn.tools.parallel import clean_after; clean_after(*sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, str(os.getpid()), *map(str, folders)], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def remote_config(root):
    """The DVC remotes of the workspace at ``root``, as its merged config has them (local paths made absolute)."""
    with Repo(str(root)) as repo:
        return {name: dict(settings) for name, settings in repo.config["remote"].items()}


RAY_ADDRESS = re.compile(r"(?:ray://)?(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})")
CONNECT_SECONDS = 5  # for a Ray cluster's address to answer before it is given up


def check_address(address, given_as):
    """A UserError unless ``address`` (``host:port``, ``ray://host:port`` or ``auto``) is one where something
    answers within CONNECT_SECONDS: Ray itself retries an address that does not for minutes."""
    if address == "auto":
        return
    found = RAY_ADDRESS.fullmatch(address)
    if not found or not 0 < int(found["port"]) < 2**16:
        raise UserError(f"{given_as} {quote(address)}: not a Ray address (host:port, ray://host:port or auto)")
    try:
        socket.create_connection((found["host"].strip("[]"), int(found["port"])), timeout=CONNECT_SECONDS).close()
    except OSError as err:
        raise UserError(f"{given_as} {address}: no Ray cluster answers there ({err.strerror or err})") from None


def start_ray(address, jobs, session_dir):
    """Join the Ray cluster at ``address`` (or $RAY_ADDRESS); with neither, start Ray in this process, sized to the
    machine, with no dashboard and no usage stats, its session files in ``session_dir``: a Ray of its own ("local"),
    never another one that runs here. Ray's own stack dump on SIGTERM is off: the stage runtime's one line says it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    given_as = "--address" if address else "RAY_ADDRESS="
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_address(address, given_as)
    import ray

    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ours = signal.getsignal(signal.SIGTERM)  # ray.init puts its own in place, which exits without a word
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(address="local", num_cpus=max(jobs, len(os.sched_getaffinity(0))), _node_ip_address="127.0.0.1",
                 object_store_memory=128 * 2**20, _temp_dir=str(session_dir), **options)
    signal.signal(signal.SIGTERM, ours)
    return ray


@dataclass(frozen=True)
class Options:
    """How `mnist-dnn repro` runs: its command-line options."""

    jobs: int = 1  # stages at once
    address: str | None = None  # a Ray cluster's, else $RAY_ADDRESS, else a Ray of its own
    force: bool = False  # run every stage, up to date or not
    dry: bool = False  # print the plan only
    via_remote: bool = False  # each copy meets the others at the DVC remote, not at this disk


def repro(targets=(), options=Options(), params=(), root=Path(".")):
    """What `dvc repro targets` does, with each stage a Ray task, at most ``options.jobs`` at once; one line per stage.
    With ``params`` (``KEY=VALUE``) the copies run with them set and the results go to the run-cache only, for
    `dvc exp run -S` with the same params to restore; the workspace is left as it is."""
    jobs, force, via_remote = options.jobs, options.force, options.via_remote
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: give 1 or more")
    from mnist_dnn.lecture.config import load_params, parse_params  # imports torch (2 s): only once a run starts

    root = Path(root).resolve()
    if not options.dry:
        remove_leftovers(root)
    checked = load_params(root / "params.yaml")  # one line, before any stage runs, for params the stages would refuse
    edited = set_params(root / "params.yaml", params) if params else None
    if edited is not None:
        checked = parse_params(edited.decode(), f"params.yaml with {exp_args(params)}")
    files = snapshot(root, edited)
    tasks, last = plan_copy(root, files, list(targets)) if params else plan(root, list(targets))
    skipped = set() if params or force else up_to_date(root, tasks)  # a copy of -S params has no outputs: none
    if skipped:
        print(f"up to date: {', '.join(name for name, _ in tasks if name in skipped)}")
        tasks = [(name, upstream - skipped) for name, upstream in tasks if name not in skipped]
    if options.dry:
        for name, upstream in tasks:
            print(f"{name}  (after {', '.join(sorted(upstream)) or 'nothing'})")
        then = f"`dvc exp run {exp_args(params)}`" if params else "`dvc repro` here"
        print(f"then {then}: {', '.join(last) or 'nothing to run'}, the rest restored from the run-cache")
        return
    if tasks:
        run_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        run = Run(remote_config(root), str(root), socket.gethostname(), run_id, jobs, via_remote, force)
        session_dir = Path(tempfile.mkdtemp(prefix=f"{SESSIONS}{os.getpid()}-"))  # in /tmp: short socket paths
        watchdog = watch_over([session_dir, root / COPIES / run_id])
        ray, entries = None, {}
        try:
            ray = start_ray(options.address, jobs, session_dir)
            with StageProgress(len(tasks), checked.train.epochs) as display:
                run_tasks(ray, (tasks, files), run, entries, display)
        finally:
            if ray is not None:
                shutdown(ray)
            shutil.rmtree(session_dir, ignore_errors=True)
            shutil.rmtree(root / COPIES / run.run_id, ignore_errors=True)
            watchdog.kill()
            watchdog.wait()
            if not params:
                update_lock(root / "dvc.lock", entries)  # the stages done, as `dvc repro` keeps them after a failure
    if via_remote:
        subprocess.run([sys.executable, "-m", "mnist_dnn.cli", "pull-run-cache"], cwd=root, check=True)
    if params:
        print(f"the workspace is as it was; `dvc exp run {exp_args(params)}` restores these stages from the run-cache")
    else:
        finish(root, list(targets), last)


def exp_args(params):
    """The ``-S`` arguments of the `dvc exp run` that restores a run with ``params``, quoted for a shell."""
    return " ".join(f"-S {shlex.quote(param)}" for param in params)


def run_tasks(ray, work, run, entries, display):
    """Submit each of the ``run``'s tasks (``work = (tasks, files)``: the plan and the workspace's files) once its
    upstream ones are done, at most ``run.jobs`` in flight; show their epochs and ends on ``display``, keep each log
    under LOGS and add its dvc.lock entry to ``entries``; on the first failure raise a UserError with that stage's line
    and log (the caller's ``shutdown`` stops the rest)."""
    from ray.util.queue import Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    tasks, files = work
    task = ray.remote(num_cpus=1, scheduling_strategy="SPREAD", max_retries=3)(stage_task)
    # the epoch lines' queue on the driver's node: a lost worker node does not take it with it
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    files, lines = ray.put(files), Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
    waiting, done, flight = dict(tasks), set(), {}
    while waiting or flight:
        for name in [n for n, upstream in waiting.items() if upstream <= done][: run.jobs - len(flight)]:
            del waiting[name]
            flight[task.remote(name, files, entries, run, lines)] = name
            display.started(name)
        ready, _ = signalled(ray.wait, list(flight), num_returns=1, timeout=0.5)
        for stage, line in lines.get_nowait_batch(lines.qsize()):
            display.line(stage, line)
        if not ready:
            continue
        name = flight.pop(ready[0])
        try:
            result = signalled(ray.get, ready[0])
        except ray.exceptions.RayError as err:  # a node lost more often than the retries allow
            lost = f"{name}: lost ({one_line(err)[:200]}); the finished stages are cached: run again"
            raise UserError(lost) from None
        log = Path(run.root, LOGS, f"{file_name(name)}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result["output"])
        if result["error"]:
            whole = f" (its whole output: {os.path.relpath(log)})" if result["output"] else ""
            raise UserError(f"{name}: {result['error']}{whole}")
        done.add(name)
        entries[name] = result["lock"]
        what = "ran" if result["ran"] else "cached"
        display.ended(name, f"[{len(done)}/{len(tasks)}] {name}: {what} on node {result['node'][:12]} in "
                      f"{result['seconds']:.1f} s; running: {', '.join(flight.values()) or '-'}")


def shutdown(ray):
    """End the Ray job, and so its tasks still running, on every node (not ray.cancel: that crashes Ray's core worker
    when a task finishes as it is cancelled, as at Ctrl-C). The error lines Ray's core prints meanwhile, one per task
    it gives up, go to Ray's session logs only, not to stderr."""
    sys.stderr.flush()
    stderr, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        ray.shutdown()
    finally:
        os.dup2(stderr, 2)
        os.close(stderr)
        os.close(devnull)


def signalled(ray_call, *args, **kwargs):
    """``ray_call(*args, **kwargs)``; a SIGINT or SIGTERM that stops it inside Ray's C++ code comes out as a
    SystemError caused by the Interrupted of ``runtime.run_stage``: raise that instead."""
    try:
        return ray_call(*args, **kwargs)
    except SystemError as err:
        if isinstance(err.__cause__, Interrupted):
            raise err.__cause__ from None
        raise


def finish(root, targets, last):
    """`dvc repro targets` in the workspace: it restores every stage the tasks ran from the run-cache and runs only
    ``last``; a warning line for any other stage it ran."""
    glob = ["--glob"] if targets else []  # targets are collected as globs (`seed@*`), as `dvc repro --glob` does
    result = subprocess.run(["dvc", "repro", *glob, *targets], cwd=root, capture_output=True, text=True)
    if result.returncode:
        raise UserError(f"dvc repro: {error_line(result.stdout + result.stderr, result.returncode)}")
    ran = re.findall(r"Running stage '([^']+)'", result.stdout)
    print(f"dvc repro here: restored the rest from the run-cache; ran {', '.join(ran) or 'nothing'}")
    unexpected = [name for name in ran if name not in last]
    if unexpected:
        print(f"warning: dvc repro ran {', '.join(unexpected)} again, which no copy's run-cache entry restored",
              file=sys.stderr)
    table, report = root / paths.SUMMARY_TABLE, root / paths.REPORT
    if table.is_file():
        print(f"\n{table.read_text(encoding='utf-8').strip()}\n")
    if report.is_file():
        print(f"report: {os.path.relpath(report)}")
