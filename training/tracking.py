"""MLflow experiment tracking of the training, evaluation, challenger and back-test runs.

A :class:`Tracker` names a tracking store and an experiment; ``tracker.run(kind, ...)``
opens one MLflow run and yields a :class:`TrackedRun` to log metrics, parameters, tags
and artefacts into::

    tracker = Tracker.from_config(TrackingConfig(), Path("data"))
    with tracker.run("train", params={"epochs": 12}, fallback="models/x/3/metadata.json") as run:
        run.log_metrics({"loss": 0.41}, step=0)
        run.log_artifacts(Path("metrics.json"))
    run.run_id  # None when tracking is off or the run could not be created

Where: ``MLFLOW_TRACKING_URI`` when set, else ``tracking.uri``, else a SQLite store at
``<data_dir>/mlflow/mlflow.db`` with artefacts in ``<data_dir>/mlflow/artifacts``. The
model store stays the record of each version: the run is an index into it, so
tracking never fails the work it tracks. The first MLflow call that fails (a server
down, a database locked) ends the run's tracking: nothing more is sent, and one
warning says what failed and where the metrics are instead (the ``fallback``).

MLflow's HTTP client retries a request 7 times with exponential backoff and waits
120 s for an answer by default, minutes against a server that is down; unless the
environment says otherwise, this module lowers those to no retry and 5 s
(``HTTP_BOUNDS``), for the whole process: a request that fails ends the run's
tracking anyway, and urllib3 would log a warning of its own for each retry. Each tracker has its own
``MlflowClient`` (never MLflow's global active run), so runs in one process do not
mix. MLflow is imported when a run starts, not with this module.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from training._tracking_values import (
    display_uri,
    flatten_metrics,
    flatten_params,
    git_commit,
    is_http,
    mlflow_key,
    sqlite_path,
)

__all__ = [
    "HTTP_BOUNDS",
    "TRACKING_URI_VARIABLE",
    "TrackedRun",
    "Tracker",
    "TrackingConfig",
    "flatten_metrics",
    "flatten_params",
    "git_commit",
]

logger = logging.getLogger(__name__)

TRACKING_URI_VARIABLE: Final = "MLFLOW_TRACKING_URI"
DEFAULT_EXPERIMENT: Final = "quantserve"
HTTP_BOUNDS: Final = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
"""MLflow's HTTP retry settings, set when the environment leaves them unset: a refused
connection fails at once, an unanswered request after 5 s."""
# MLflow's limits per log_batch call.
_BATCH_METRICS: Final = 1000
_BATCH_PARAMS: Final = 100


class TrackingConfig(BaseModel):
    """Where ``quantserve`` records its runs in MLflow."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="False: no MLflow run; metadata.json says why.")
    uri: str | None = Field(
        None,
        description="Tracking URI (http://host:5000, sqlite:///path.db); MLFLOW_TRACKING_URI "
        "wins over it; neither: sqlite:///<data_dir>/mlflow/mlflow.db.",
    )
    experiment: str = Field(DEFAULT_EXPERIMENT, min_length=1, description="Experiment name.")


class Tracker:
    """A tracking store and experiment that runs are recorded in.

    Parameters
    ----------
    uri : str or None
        MLflow tracking URI; None turns tracking off (``off_reason`` says why).
    experiment : str
        Created on first use when missing.
    artifact_location : str, optional
        The experiment's artefact root when this tracker creates it. A local database
        needs one: MLflow's default is ``./mlruns`` in the working directory.
    off_reason : str, optional
        Why tracking is off, recorded in place of a run.
    """

    def __init__(
        self,
        uri: str | None,
        experiment: str = DEFAULT_EXPERIMENT,
        *,
        artifact_location: str | None = None,
        off_reason: str | None = None,
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self.off_reason = off_reason or ("tracking is off" if uri is None else None)
        self._client: Any = None
        self._experiment_id: str | None = None

    @classmethod
    def from_config(
        cls, config: TrackingConfig, data_dir: Path, environ: Mapping[str, str] | None = None
    ) -> Tracker:
        """The tracker of ``config``; ``environ`` (default: ``os.environ``) may name the URI."""
        if not config.enabled:
            return cls.off("tracking.enabled is false")
        environ = os.environ if environ is None else environ
        uri = environ.get(TRACKING_URI_VARIABLE) or config.uri
        if uri is None:
            uri = f"sqlite:///{(data_dir / 'mlflow' / 'mlflow.db').resolve()}"
        database = sqlite_path(uri)
        artifacts = None if database is None else (database.parent / "artifacts").resolve()
        return cls(
            uri,
            config.experiment,
            artifact_location=None if artifacts is None else artifacts.as_uri(),
        )

    @classmethod
    def off(cls, reason: str) -> Tracker:
        """A tracker that records nothing; its runs carry ``reason``."""
        return cls(None, off_reason=reason)

    @property
    def display_uri(self) -> str:
        """The URI without credentials, for messages and ``metadata.json``."""
        return "" if self.uri is None else display_uri(self.uri)

    @contextmanager
    def run(
        self,
        kind: str,
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        fallback: str = "the command's own outputs",
    ) -> Iterator[TrackedRun]:
        """One MLflow run around the block: FINISHED when it ends, FAILED when it raises.

        ``kind`` (train, evaluate, challenger, backtest) is the ``run_kind`` tag;
        ``params`` are flattened to dotted keys; tags whose value is None are left
        out; ``fallback`` says where the metrics are if tracking fails.
        """
        run = TrackedRun(self, fallback)
        run._start(name or kind, params or {}, {"run_kind": kind, **(tags or {})})
        status = "FAILED"
        try:
            yield run
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            run._end(status)

    def _client_and_experiment(self) -> tuple[Any, str]:
        if self._client is None:
            self._client = _new_client(self.uri or "")
        if self._experiment_id is None:
            self._experiment_id = _experiment_id(
                self._client, self.experiment, self.artifact_location
            )
        return self._client, self._experiment_id


class TrackedRun:
    """One MLflow run, or its absence: every method is a no-op once tracking has failed.

    Attributes
    ----------
    run_id, experiment_id : str or None
        None when tracking is off or the run could not be created.
    fallback : str
        Where the run's metrics are kept whatever MLflow does; callers narrow it once
        they know (``models/forecaster/3/metadata.json``).
    failure : str or None
        The first MLflow call that failed, and why.
    """

    def __init__(self, tracker: Tracker, fallback: str) -> None:
        self.tracker = tracker
        self.fallback = fallback
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.failure: str | None = None
        self._client: Any = None

    @property
    def reason(self) -> str | None:
        """Why there is no run (tracking off, or failed before the run existed)."""
        if self.run_id is not None:
            return None
        if self.tracker.uri is None:
            return self.tracker.off_reason
        return f"MLflow tracking at {self.tracker.display_uri} failed ({self.failure})"

    def reference(self) -> dict[str, Any] | None:
        """``metadata.json``'s ``mlflow`` entry: where the run is; None without a run."""
        if self.run_id is None:
            return None
        uri = self.tracker.display_uri
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "experiment": self.tracker.experiment,
            "tracking_uri": uri,
            "run_url": f"{uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
            if is_http(uri)
            else None,
        }

    def metadata_fields(self) -> dict[str, Any]:
        """``{"mlflow": reference}``, or ``{"mlflow": None, "mlflow_reason": why}``."""
        reference = self.reference()
        if reference is None:
            return {"mlflow": None, "mlflow_reason": self.reason}
        return {"mlflow": reference}

    @property
    def active(self) -> bool:
        """True while the run exists and no MLflow call has failed."""
        return self.run_id is not None and self.failure is None

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log finite ``metrics`` (nested mappings are flattened) at ``step`` (default 0)."""
        if not self.active:
            return
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        entries = [
            Metric(key, value, timestamp, step or 0)
            for key, value in flatten_metrics(metrics).items()
        ]
        for start in range(0, len(entries), _BATCH_METRICS):
            self._call("log metrics", "log_batch", metrics=entries[start : start + _BATCH_METRICS])

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log ``params`` (flattened to dotted keys, values as strings)."""
        if not self.active:
            return
        from mlflow.entities import Param

        entries = [Param(key, value) for key, value in flatten_params(params).items()]
        for start in range(0, len(entries), _BATCH_PARAMS):
            self._call("log parameters", "log_batch", params=entries[start : start + _BATCH_PARAMS])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set ``tags``; those whose value is None are left out."""
        if not self.active:
            return
        from mlflow.entities import RunTag

        entries = [RunTag(mlflow_key(k), str(v)) for k, v in tags.items() if v is not None]
        if entries:
            self._call("set tags", "log_batch", tags=entries)

    def log_artifacts(
        self, path: Path, *, include: Sequence[str] = ("*",), artifact_path: str | None = None
    ) -> None:
        """Upload the file ``path``, or the files of the folder ``path`` matching ``include``."""
        if not self.active:
            return
        files = [path] if path.is_file() else _matching(path, include)
        for file in files:
            self._call(f"upload {file.name}", "log_artifact", str(file), artifact_path)

    def _start(self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        if self.tracker.uri is None:
            return
        tags = {"mlflow.source.git.commit": git_commit(), **tags}
        try:
            client, experiment_id = self.tracker._client_and_experiment()
            created = client.create_run(
                experiment_id,
                run_name=name,
                tags={mlflow_key(k): str(v) for k, v in tags.items() if v is not None},
            )
        except Exception as exc:  # any failure of MLflow's: tracking never fails the work
            self.failure = f"create the run: {_describe(exc)}"
            return
        self._client, self.experiment_id = client, experiment_id
        self.run_id = created.info.run_id
        self.log_params(params)

    def _end(self, status: str) -> None:
        if self.run_id is not None:
            self._call("end the run", "set_terminated", status=status)
        if self.failure is not None:
            logger.warning(
                "MLflow tracking at %s failed (%s); the run's metrics are in %s",
                self.tracker.display_uri,
                self.failure,
                self.fallback,
            )

    def _call(self, action: str, method: str, *args: Any, **kwargs: Any) -> None:
        """``client.<method>(run_id, ...)``, unless a call failed before; a failure ends them."""
        if not self.active:
            return
        try:
            getattr(self._client, method)(self.run_id, *args, **kwargs)
        except Exception as exc:  # any failure of MLflow's: tracking never fails the work
            self.failure = f"{action}: {_describe(exc)}"


def _new_client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri``; a SQLite store's folder is created first."""
    if is_http(uri):
        for variable, value in HTTP_BOUNDS.items():
            os.environ.setdefault(variable, value)
    database = sqlite_path(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    """The id of the experiment ``name``, created (at ``artifact_location``) when missing."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except MlflowException:
        # Another process created it in the meantime.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _matching(folder: Path, patterns: Sequence[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})


def _describe(exc: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line, its middle cut when long (MLflow quotes whole bodies)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else f"{text[: limit // 2]} ... {text[-limit // 2 :]}"
