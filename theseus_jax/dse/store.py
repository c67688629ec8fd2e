"""Durable run storage: every evaluation of an exploration run in a SQLite database.

A run directory holds ``run.sqlite`` with two tables:

* ``run`` -- one row: the run's configuration (JSON, everything needed to restart it), the
  package version and the creation time;
* ``evals`` -- one row per completed evaluation, in order (``seq``): the iteration that
  proposed it, the method, the fidelity, the design (unit-cube encoding and the design's
  parameters as JSON), the objectives, feasibility and violated constraints, the declared
  cost and the wall seconds it took.

Each evaluation is committed as soon as it completes (WAL journal, ``synchronous=FULL``), so a
killed run loses at most the evaluation that was in flight. :meth:`RunStore.evaluations`
reads them back in order for a resumed run to replay.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._version import __version__

__all__ = ["EvalRecord", "RunStore", "RunLock", "RunBusy", "DB_NAME", "LOCK_NAME"]

DB_NAME = "run.sqlite"
LOCK_NAME = "run.lock"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    config TEXT NOT NULL,
    package_version TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS evals (
    seq INTEGER PRIMARY KEY,
    iteration INTEGER NOT NULL,
    method TEXT NOT NULL,
    fidelity INTEGER NOT NULL,
    x_unit TEXT NOT NULL,
    design TEXT NOT NULL,
    objectives TEXT NOT NULL,
    feasible INTEGER NOT NULL,
    violations INTEGER NOT NULL,
    cost REAL NOT NULL,
    wall_s REAL NOT NULL,
    extra TEXT NOT NULL,
    created REAL NOT NULL
);
"""


class EvalRecord(NamedTuple):
    """One stored evaluation (host-side Python values)."""

    seq: int
    iteration: int
    method: str
    fidelity: int
    x_unit: tuple
    design: dict
    objectives: tuple
    feasible: bool
    violations: int
    cost: float
    wall_s: float
    extra: dict


def _json(x) -> str:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(f"not JSON-serialisable: {type(o).__name__}")

    return json.dumps(x, default=default, sort_keys=True)


class RunStore:
    """A run directory's SQLite database (open with :meth:`create` or :meth:`open`)."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn

    @staticmethod
    def _connect(path: Path, create: bool = True) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        try:
            if not create:
                # an existing file must already be one of ours: never add tables to it
                names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
                if not {"run", "evals"} <= names:
                    raise ValueError(
                        f"{path} is an SQLite file but not a theseus run (tables: "
                        f"{sorted(names) or 'none'}); --resume takes a directory written by "
                        "`theseus explore --out DIR`"
                    )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            if create:
                conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            conn.close()
            raise ValueError(
                f"{path} cannot be read as a run database ({e}): the file is truncated or "
                "not from theseus; move it away and start a new run, or restore it"
            ) from None
        except ValueError:
            conn.close()
            raise
        return conn

    @classmethod
    def create(cls, run_dir, config: dict) -> RunStore:
        """Start a new run in ``run_dir`` (created if needed); refuses to overwrite a run."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / DB_NAME
        # an empty file is no run (a reader's sqlite3.connect creates one): start here
        if path.exists() and path.stat().st_size > 0:
            raise FileExistsError(
                f"{path} already holds a run: continue it with --resume {run_dir}, or choose "
                "another --out directory"
            )
        conn = cls._connect(path)
        conn.execute(
            "INSERT INTO run VALUES (1, ?, ?, ?, ?)",
            (SCHEMA_VERSION, _json(config), __version__, time.time()),
        )
        return cls(path, conn)

    @classmethod
    def open(cls, run_dir) -> RunStore:
        """Open an existing run (for resuming or reading)."""
        path = Path(run_dir) / DB_NAME
        if not path.exists():
            raise FileNotFoundError(
                f"no run database at {path}: --resume takes the directory of an earlier "
                "`theseus explore --out DIR` run"
            )
        conn = cls._connect(path, create=False)
        try:
            row = conn.execute("SELECT schema_version FROM run WHERE id = 1").fetchone()
        except sqlite3.DatabaseError as e:
            conn.close()
            raise ValueError(f"{path} cannot be read as a run database ({e})") from None
        if row is None:
            raise ValueError(f"{path} has no run configuration (created by another tool?)")
        if row[0] != SCHEMA_VERSION:
            raise ValueError(
                f"{path} has schema version {row[0]}; this theseus_jax reads {SCHEMA_VERSION}"
            )
        return cls(path, conn)

    def config(self) -> dict:
        return json.loads(self._conn.execute("SELECT config FROM run WHERE id = 1").fetchone()[0])

    def append(
        self,
        *,
        iteration: int,
        method: str,
        fidelity: int,
        x_unit,
        design: dict,
        objectives,
        feasible: bool,
        violations: int,
        cost: float,
        wall_s: float,
        extra: dict | None = None,
    ) -> int:
        """Write one evaluation and commit it; returns its ``seq``."""
        cur = self._conn.execute(
            "INSERT INTO evals (iteration, method, fidelity, x_unit, design, objectives, "
            "feasible, violations, cost, wall_s, extra, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                int(iteration),
                str(method),
                int(fidelity),
                _json([float(v) for v in np.asarray(x_unit, float).reshape(-1)]),
                _json(design),
                _json([float(v) for v in np.asarray(objectives, float).reshape(-1)]),
                int(bool(feasible)),
                int(violations),
                float(cost),
                float(wall_s),
                _json(extra or {}),
                time.time(),
            ),
        )
        return int(cur.lastrowid)

    def evaluations(self) -> list[EvalRecord]:
        rows = self._conn.execute(
            "SELECT seq, iteration, method, fidelity, x_unit, design, objectives, feasible, "
            "violations, cost, wall_s, extra FROM evals ORDER BY seq"
        ).fetchall()
        return [
            EvalRecord(
                seq=r[0],
                iteration=r[1],
                method=r[2],
                fidelity=r[3],
                x_unit=tuple(json.loads(r[4])),
                design=json.loads(r[5]),
                objectives=tuple(json.loads(r[6])),
                feasible=bool(r[7]),
                violations=int(r[8]),
                cost=float(r[9]),
                wall_s=float(r[10]),
                extra=json.loads(r[11]),
            )
            for r in rows
        ]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RunBusy(RuntimeError):
    """Another process holds the run directory's lock."""


class RunLock:
    """Exclusive lock on a run directory while one process writes it.

    An advisory ``fcntl.flock`` on ``run_dir/run.lock`` (released by the kernel when the
    holder dies, so a killed run never leaves a stale lock). A second process that tries to
    write the same run gets :class:`RunBusy` naming the holder's pid, instead of both
    "succeeding" and interleaving their evaluations. Where ``fcntl`` does not exist
    (Windows) the lock is a no-op.
    """

    def __init__(self, run_dir):
        self.path = Path(run_dir) / LOCK_NAME
        self._f = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise RunBusy(
                f"{self.path.parent} is being written by another process (pid {holder}): "
                "wait for it to finish, or write to another --out directory"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._f = f
        return self

    def release(self) -> None:
        if self._f is not None:
            self._f.close()  # closing drops the flock
            self._f = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
