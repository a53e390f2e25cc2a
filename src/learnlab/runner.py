"""The runner: executes one experiment config as one run in the store.

Experiments see only the narrow ``Run`` handle: ``run.log(step, loss=...)``,
``run.artifact(name, obj)``, ``run.progress(...)`` and the checkpoint pair. The
runner records the resolved config, git commit, package versions and device; it marks
a run ``completed``, or ``failed`` with the reason (a raised error, a non-finite
loss), without letting the failure escape into a sweep; then checks the claims on the
stored metrics.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from learnlab import config as config_lib
from learnlab import grid
from learnlab.claims import Claim, ClaimSpec
from learnlab.errors import ConfigError, LeaseLost, StoreError, Terminated
from learnlab.runtime import keep_freed_memory, resolve_device, seed_everything
from learnlab.store import Store, scoped_name
from learnlab.train import distributed as ddp

if TYPE_CHECKING:
    from learnlab.figures import Figure
    from learnlab.results import StoredRun

__all__ = ["Experiment", "Run", "RunOutcome", "execute", "config_hash", "check_and_draw", "draw_figures",
           "current_code_version"]


class Experiment(Protocol):
    """What every experiment module offers (modules satisfy this structurally)."""

    NAME: str
    DESCRIPTION: str
    Config: type

    def presets(self) -> dict[str, Any]: ...
    def run(self, cfg: Any, run: Run) -> None: ...
    def claims(self, cfg: Any) -> list[ClaimSpec]: ...
    def figures(self, run: StoredRun) -> dict[str, Figure]: ...


class Run:
    """The handle an experiment writes through. Metrics are buffered and written in batches."""

    flush_every_rows = 20_000

    def __init__(self, store: Store, run_id: str, cfg: Any, *, device: torch.device, quiet: bool = False,
                 scope: str = "", parent: Run | None = None):
        self.store, self.id, self.config, self.device, self.quiet = store, run_id, cfg, device, quiet
        self.scope, self._parent = scope, parent
        self.dir = store.run_dir(run_id)
        self._buffer: list[tuple[int, str, Any]] = []
        self._buffered_rows = 0
        self._checkpoint_recorded = False
        # The store's metric mark when this process took the run up: rows at or below it were
        # logged by an earlier process (a resumed run's scope without a checkpoint drops them).
        self._start_mark = parent._start_mark if parent is not None else store.metric_mark() if ddp.is_main() else 0
        self._trained_scopes: set[str] = set()  # (root only) scopes a training loop has started in, this process

    def scoped(self, scope: str) -> Run:
        """A handle for a second model trained in the same run (a control): its metrics are
        named ``scope/name`` and it has its own checkpoint, so each part resumes on its own."""
        if "/" in scope or not scope:
            raise ValueError("a scope is a non-empty name without '/'")
        # Scopes nest (``outer/inner``); every handle writes through the root's buffer.
        root = self._parent or self
        path = f"{self.scope}/{scope}" if self.scope else scope
        return Run(self.store, self.id, self.config, device=self.device, quiet=self.quiet, scope=path, parent=root)

    # -- metrics ---------------------------------------------------------------------

    def log(self, step: int, **metrics: float | torch.Tensor | np.ndarray) -> None:
        """Record metrics at ``step``. A 1-D tensor or array is one value per replica.

        Tensors are copied (a logged view of a parameter must not follow its later
        in-place updates) and read back only at the next flush, so logging does not force
        a device synchronisation every step.
        """
        if not ddp.is_main():  # data parallel: rank 0 alone writes the store
            return
        if self._parent is not None:  # a scoped handle writes through its parent's buffer
            self._parent.log(step, **{scoped_name(self.scope, name): value for name, value in metrics.items()})
            return
        for name, value in metrics.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().clone()
                self._buffered_rows += max(value.numel(), 1)
            else:
                self._buffered_rows += int(np.size(value))
            self._buffer.append((step, name, value))
        if self._buffered_rows >= self.flush_every_rows:
            self.flush()

    def clear_metrics(self) -> None:
        """Drop this scope's metrics: a part that only measures (no ``fit``, so no checkpoint)
        calls it before logging, so a resumed run that measures again does not log twice."""
        if not ddp.is_main():
            return
        self.flush()
        self.store.delete_metrics_after(self.id, -1, self.scope)

    def flush(self) -> None:
        if self._parent is not None:
            self._parent.flush()
            return
        if not ddp.is_main():
            self._buffer, self._buffered_rows = [], 0
            return
        rows = []
        for step, name, value in self._buffer:
            if isinstance(value, torch.Tensor):
                value = value.cpu().numpy()
            array = np.asarray(value, dtype=np.float64)
            if array.ndim == 0:
                rows.append((self.id, int(step), name, None, _finite_or_none(float(array))))
            else:
                rows += [(self.id, int(step), name, i, _finite_or_none(float(v))) for i, v in enumerate(array.ravel())]
        self.store.add_metrics(rows)
        self._buffer, self._buffered_rows = [], 0

    # -- artifacts -------------------------------------------------------------------

    def artifact(self, name: str, obj: Any) -> Path:
        """Save ``obj`` under the run's folder and record it: a dict or list as JSON, a
        tensor or array as ``.npy``, bytes or str as a file, a matplotlib figure as PNG."""
        if self.scope:
            name = f"{self.scope.replace('/', '--')}.{name}"
        if not ddp.is_main():
            return self.dir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        if hasattr(obj, "savefig"):
            path = self.dir / f"{name}.png"
            obj.savefig(path, dpi=120, bbox_inches="tight")
        elif isinstance(obj, (dict, list)):
            path = self.dir / f"{name}.json"
            # one line: json's C encoder (an indent takes the pure-Python one, ~2.5x slower on
            # icl-markov's 6.5 MB of attention snapshots)
            _atomic_write_bytes(path, json.dumps(obj, default=_jsonable).encode())
        elif isinstance(obj, (torch.Tensor, np.ndarray)):
            path = self.dir / f"{name}.npy"
            array = obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else obj
            np.save(path, array)
        elif isinstance(obj, (bytes, str)):
            path = self.dir / name
            _atomic_write_bytes(path, obj.encode() if isinstance(obj, str) else obj)
        else:
            raise TypeError(f"run.artifact cannot save a {type(obj).__name__}")
        self.store.set_artifact(self.id, name, path)
        return path

    # -- checkpoints -----------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.dir / (f"checkpoint-{self.scope.replace('/', '--')}.pt" if self.scope else "checkpoint.pt")

    @property
    def _checkpoint_name(self) -> str:
        return f"checkpoint/{self.scope}" if self.scope else "checkpoint"

    def save_checkpoint(self, step: int, state: Mapping[str, Any]) -> None:
        """Write ``state`` atomically (temporary file, fsync, rename) after flushing the
        metrics logged so far, so the store never lags behind a checkpoint. The file carries
        the SHA-256 of its payload (``load_checkpoint`` refuses a damaged one) and the store's
        metric mark, so a resume drops exactly the rows logged after it."""
        if not ddp.is_main():
            return
        self.flush()
        self.dir.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save({"step": step, _MARK: self.store.metric_mark(), **state}, buffer)
        payload = buffer.getbuffer()
        temporary = self.checkpoint_path.with_suffix(".pt.tmp")
        with open(temporary, "wb") as handle:
            handle.write(_CHECKPOINT_MAGIC + hashlib.sha256(payload).digest())
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.checkpoint_path)
        _fsync_directory(self.dir)
        if not self._checkpoint_recorded:  # the path never changes: one store write per run
            self.store.set_artifact(self.id, self._checkpoint_name, self.checkpoint_path)
            self._checkpoint_recorded = True

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint, or ``None`` if the run never wrote one. Metrics logged
        after it are dropped, since the resumed run logs them again.

        A training loop starts with this call, once per scope: a second training in the same
        scope of one run would resume from the first one's checkpoint (once it wrote one), so
        it is refused here rather than left to depend on the checkpoint timer."""
        root = self._parent or self
        if self.scope in root._trained_scopes:
            raise RuntimeError(f"a second training in scope {self.scope or '(the run)'!r} of run {self.id}: "
                               "give each trained model a scope of its own (run.scoped or learnlab.grid)")
        root._trained_scopes.add(self.scope)
        self.flush()
        recorded = self.store.artifacts(self.id).get(self._checkpoint_name)
        main = ddp.is_main()  # every rank reads the checkpoint; rank 0 alone edits the store
        if recorded is None:  # no checkpoint: the scope starts over; what earlier processes logged in it goes
            if main:
                self.store.delete_metrics_until(self.id, self._start_mark, self.scope)
            return None
        state = read_checkpoint(recorded, self.id, self.device)
        if main:
            mark = state.pop(_MARK, None)  # None: a checkpoint from before marks, cut by step
            self.store.delete_metrics_after(self.id, int(state["step"]), self.scope, mark=mark)
        return state

    # -- progress --------------------------------------------------------------------

    def progress(self, total: int, *, initial: int = 0, desc: str | None = None, unit: str = "step") -> tqdm:
        """A progress bar, silent with ``--quiet`` and when stderr is not a terminal."""
        return tqdm(total=total, initial=initial, desc=desc or (f"{self.id} {self.scope}".strip()), unit=unit, dynamic_ncols=True,
                    disable=True if self.quiet else None, leave=False)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    error: str | None


def config_hash(experiment: str, cfg_dict: dict[str, Any]) -> str:
    canonical = json.dumps({"experiment": experiment, "config": cfg_dict}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def execute(
    experiment: Experiment,
    cfg: Any | None,
    *,
    store: Store,
    preset: str | None = None,
    device: str = "auto",
    quiet: bool = False,
    resume: str | None = None,
    run_id: str | None = None,
) -> RunOutcome:
    """Run ``cfg`` of ``experiment`` as a new run (or continue run ``resume``).

    Invalid input (config, device, run id, checkpoint) raises a ``LearnlabError``
    before anything is written. Errors inside the run are caught and stored. With
    ``resume``, ``cfg`` may be ``None``: the run's stored config is used.
    """
    ddp.init_from_env()  # under torchrun: join the other ranks (a no-op otherwise)
    keep_freed_memory()
    torch_device = ddp.local_device(resolve_device(device))
    main = ddp.is_main()  # every rank trains; rank 0 alone writes the store
    if resume is not None:
        record = store.get_run(resume)
        if record.experiment != experiment.NAME:
            raise StoreError(f"Run {record.id} belongs to experiment '{record.experiment}', not '{experiment.NAME}'.")
        if record.status == "completed":
            raise StoreError(f"Run {record.id} already completed; nothing to resume.")
        progress = any(name.startswith("checkpoint") or grid.is_cell_record(name) or name == _TRAINED
                       for name in store.artifacts(record.id))
        if not progress and store.lease_holder(record.id) is None:  # a live run: _take_over says it is running
            raise StoreError(f"Run {record.id} has no checkpoint to resume from (it stopped before its first one); "
                             f"start it again: learnlab run {record.experiment} --preset {record.preset}.")
        run_id, preset = record.id, record.preset
        cfg = config_lib.from_dict(experiment.Config, record.config)
        handle = Run(store, run_id, cfg, device=torch_device, quiet=quiet)
        refused = None
        if main:  # rank 0 decides for every rank (the others would see its lease as live)
            try:
                _take_over(store, handle)
            except StoreError as error:
                refused = str(error)
        refused = ddp.broadcast_object(refused)
        if refused is not None:
            raise StoreError(refused)
    else:
        config_lib.validate(cfg)
        check_seed(cfg)
        cfg_dict = config_lib.to_dict(cfg)
        run_id = ddp.broadcast_object(run_id or uuid.uuid4().hex[:10])
        if main:
            store.create_run(
                run_id, experiment=experiment.NAME, preset=preset, config=cfg_dict,
                config_hash=config_hash(experiment.NAME, cfg_dict), seed=int(cfg.seed),
                git_commit=_git_commit(), versions=_versions(),
                device=str(torch_device) + (f" x {ddp.world_size()} ranks" if ddp.world_size() > 1 else ""),
                lease=True,
            )
        handle = Run(store, run_id, cfg, device=torch_device, quiet=quiet)
        if main:
            _record_about(experiment, handle)

    seed_everything(int(cfg.seed))
    # A run stopped after training, while its claims were checked, resumes to the claims alone.
    trained = resume is not None and _TRAINED in store.artifacts(run_id)
    try:
        with _sigterm_as_interrupt():  # a scheduler's time limit: stop as on Ctrl-C, checkpoint kept
            if not trained:
                experiment.run(cfg, handle)
                handle.flush()
                if main:
                    handle.artifact(_TRAINED, {"experiment": experiment.NAME})
    except LeaseLost as lost:  # another process took the run over while this one was stalled: leave it be
        return RunOutcome(run_id, "failed", str(lost))
    except KeyboardInterrupt as interrupt:
        handle.flush()
        if main:
            reason = "SIGTERM" if isinstance(interrupt, Terminated) else "KeyboardInterrupt"
            store.set_status(run_id, "interrupted", reason)
        interrupt.run_id, interrupt.experiment = run_id, experiment.NAME  # the CLI prints how to resume
        raise
    except Exception as error:  # a failed run is a result, not a crash of the sweep
        handle.flush()
        message = f"{type(error).__name__}: {error}"
        if os.environ.get("LEARNLAB_TRACEBACK"):
            message += "\n" + traceback.format_exc()
        if main:
            store.set_status(run_id, "failed", message)
        return RunOutcome(run_id, "failed", message)
    if not main:
        return RunOutcome(run_id, "completed", None)
    try:
        with _sigterm_as_interrupt():
            # LEARNLAB_FIGURES=0: claims only (a large sweep's points, tests); `learnlab show ID --recheck` draws them
            check_and_draw(experiment, store, run_id, figures=os.environ.get("LEARNLAB_FIGURES", "1") != "0")
    except KeyboardInterrupt as interrupt:  # trained, not yet judged: a resume checks the claims
        store.set_status(run_id, "interrupted", "SIGTERM" if isinstance(interrupt, Terminated) else "KeyboardInterrupt")
        interrupt.run_id, interrupt.experiment = run_id, experiment.NAME
        raise
    except Exception as error:
        message = f"claims could not be checked: {type(error).__name__}: {error}"
        if os.environ.get("LEARNLAB_TRACEBACK"):
            message += "\n" + traceback.format_exc()
        store.set_status(run_id, "failed", message)
        return RunOutcome(run_id, "failed", message)
    store.set_status(run_id, "completed")
    return RunOutcome(run_id, "completed", None)


def check_and_draw(experiment: Experiment, store: Store, run_id: str, *, figures: bool = True) -> list[Claim]:
    """Check the experiment's claims on the stored run and store them; draw its figures
    and store each as SVG and PNG artifacts (``figure/<name>``) with their captions
    (``figures.json``), so the report shows the run without the experiment's code."""
    from learnlab.claims import check_claims
    from learnlab.results import StoredRun

    stored = StoredRun(store.get_run(run_id), experiment.Config)
    claims = check_claims(experiment.claims(stored.config), stored)
    store.set_claims(run_id, claims)
    if figures:
        draw_figures(experiment, store, stored)
    return claims


def draw_figures(experiment: Experiment, store: Store, stored: Any) -> dict[str, str]:
    """Draw ``experiment.figures(stored)`` into the run's folder; returns {name: caption}."""
    from learnlab.figures import close, save_figure

    directory = store.run_dir(stored.id) / "figures"
    captions = {}
    for name, drawn in experiment.figures(stored).items():
        svg, png = save_figure(drawn.figure, directory, name)
        close(drawn.figure)
        store.set_artifact(stored.id, f"figure/{name}.svg", svg)
        store.set_artifact(stored.id, f"figure/{name}.png", png)
        captions[name] = drawn.caption
    if captions:
        path = directory / "captions.json"
        _atomic_write_bytes(path, json.dumps(captions, indent=1).encode())
        store.set_artifact(stored.id, "figures.json", path)
    return captions


# ----------------------------------------------------------------------------- helpers


_CHECKPOINT_MAGIC = b"learnlab-checkpoint/2\n"  # then the payload's SHA-256 (32 bytes), then torch.save bytes
_MARK = "_metrics_mark"
_TRAINED = "trained"  # artifact: experiment.run returned; only the claims and figures remain


def read_checkpoint(path: Path, run_id: str, device: torch.device | str = "cpu", *,
                    load: bool = True) -> dict[str, Any]:
    """A checkpoint's state, its checksum verified first; one clear ``StoreError`` naming the
    file for a missing, truncated, damaged or foreign one. ``load=False`` only verifies."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise StoreError(f"Checkpoint {path} of run {run_id} is missing.") from None
    except OSError as error:
        raise StoreError(f"Checkpoint {path} of run {run_id} cannot be read ({error.strerror}).") from None
    if data.startswith(_CHECKPOINT_MAGIC):
        start = len(_CHECKPOINT_MAGIC) + 32
        payload = memoryview(data)[start:]
        if len(data) < start or hashlib.sha256(payload).digest() != data[len(_CHECKPOINT_MAGIC):start]:
            raise StoreError(f"Checkpoint {path} of run {run_id} is corrupt: its checksum does not match its "
                             f"contents (damaged or truncated); refusing to resume from it.")
        source = io.BytesIO(payload)
    elif data.startswith(b"PK"):  # a checkpoint written before checksums: torch's zip, checked by loading it
        source = io.BytesIO(data)
    else:
        raise StoreError(f"Checkpoint {path} of run {run_id} is corrupt (not a learnlab checkpoint).")
    if not load and data.startswith(_CHECKPOINT_MAGIC):  # the checksum held: nothing more to check
        return {}
    try:
        state = torch.load(source, map_location=device, weights_only=True)
        int(state["step"])
    except Exception as error:  # a truncated or foreign file
        raise StoreError(f"Checkpoint {path} of run {run_id} is corrupt ({type(error).__name__}).") from None
    return state


def _take_over(store: Store, handle: Run) -> None:
    """Before a resume writes anything: refuse a run another process is training, verify
    every checkpoint of the run, then take its lease (atomically: of two resumes, one wins)."""
    run_id = handle.id
    holder = store.lease_holder(run_id)
    if holder is not None:  # a second process would train it too, and log every row twice
        raise StoreError(f"Run {run_id} is still running ({holder}); resume it once that process has stopped.")
    artifacts = store.artifacts(run_id)
    for name, path in artifacts.items():
        if name == "checkpoint" or name.startswith("checkpoint/"):
            read_checkpoint(path, run_id, load=False)
    if handle.checkpoint_path.exists() and "checkpoint" not in artifacts:
        read_checkpoint(handle.checkpoint_path, run_id, load=False)
    store.acquire_lease(run_id)


MAX_SEED = 2**63 - 1  # seeds are stored as SQLite integers


def check_seed(cfg: Any) -> None:
    """A run's seed must fit the store (a 64-bit signed integer) and be non-negative."""
    seed = getattr(cfg, "seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"The 'seed' parameter of {type(cfg).__name__} must be an int in [0, {MAX_SEED}]. "
                          f"Got {seed}.")


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises ``Terminated`` (a ``KeyboardInterrupt``) while the body runs, when this
    is the main thread and nobody else handles SIGTERM (submitit, Ray and torchrun keep theirs)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise Terminated("SIGTERM")

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)



def _record_about(experiment: Experiment, handle: Run) -> None:
    """What the report says about the run's experiment (its paper, its docstring), stored
    with the run so the report needs no experiment code."""
    import inspect

    handle.artifact("about", {"experiment": experiment.NAME, "description": experiment.DESCRIPTION,
                              "doc": inspect.getdoc(experiment) or "", "presets": list(experiment.presets())})



def _finite_or_none(value: float) -> float | None:
    # SQLite stores NaN as NULL anyway; infinities are kept.
    return None if value != value else value


def _jsonable(value):
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.tolist() if hasattr(value, "tolist") else value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def current_code_version() -> str | None:
    """What a run records as its code version (the git commit, where there is one)."""
    return _git_commit()


def _git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _versions() -> dict[str, str]:
    from learnlab import __version__

    # cpu_threads: what the run was given (a --jobs worker gets cores / jobs), so a duration can be read.
    return {"learnlab": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "platform": sys.platform, "cpu_threads": str(torch.get_num_threads())}
