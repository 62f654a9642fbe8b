"""Settings: YAML defaults in ``config/``, overridden by ``QUANTSERVE_*`` environment variables."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from training.config import IngestConfig, RetrainConfig, SparkConfig, StreamConfig, TrainingConfig
from training.tracking import TrackingConfig

DEFAULT_CONFIG_FILE = Path(__file__).resolve().parents[2] / "config" / "default.yaml"
CONFIG_FILE_VARIABLE = "QUANTSERVE_CONFIG_FILE"


class OptimizerSettings(BaseModel):
    """How the service solves allocations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    solver: str = "CLARABEL"
    fallback_solvers: tuple[str, ...] = ("SCS",)
    cache_size: int = Field(128, ge=1, description="Compiled problems kept (LRU).")
    instances_per_problem: int = Field(
        2,
        ge=1,
        le=64,
        description="Compiled copies of one problem structure: how many same-shape solves "
        "run at once in a process (more wait, within the solver time limit).",
    )
    risk_free_rate: float = Field(0.0, description="Annualised, default for requests.")
    correlation_lookback_days: int = Field(
        252, ge=30, description="Trailing daily returns behind the Ledoit-Wolf correlation."
    )


Role = Literal["viewer", "trader", "admin"]
"""viewer: forecasts and models; trader: also optimize and back-tests; admin: everything."""

ROLES: tuple[Role, ...] = ("viewer", "trader", "admin")
"""The roles from least to most allowed: each role may do all that the ones before it may."""


class ApiKey(BaseModel):
    """One API key, stored as the SHA-256 of the key (never the key itself)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="Shown in logs and audit.")
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the key.")


def _parse_api_keys(value: Any) -> Any:
    """``QUANTSERVE_API_KEYS`` as JSON, or compact: ``id:role:sha256,id2:role:sha256``.

    The compact form fits a shell variable or a Kubernetes Secret on one line. YAML and
    keyword arguments arrive as lists already and pass through. Error messages never
    repeat an entry: a misconfigured entry may hold a key instead of its hash.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return ()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"api_keys is not valid JSON ({exc.msg} at {exc.pos})") from None
    entries = []
    for position, entry in enumerate(text.split(","), start=1):
        parts = [part.strip() for part in entry.strip().split(":")]
        if len(parts) != 3 or not all(parts):
            raise ValueError(
                f"api_keys entry {position} is not id:role:sha256 (entries are separated "
                "by commas; `quantserve keys create` prints one)"
            )
        entries.append(dict(zip(("id", "role", "sha256"), parts, strict=True)))
    return entries


TICKERS_CEILING = 10_000
"""Most tickers the request schemas accept whatever ``limits.max_tickers`` says."""

FRONTIER_POINTS_CEILING = 1_000
"""Most frontier points the request schema accepts whatever ``limits.max_frontier_points`` says."""


class LimitSettings(BaseModel):
    """What one request may ask for, and how often a key may ask."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    max_tickers: int = Field(
        500, ge=1, le=TICKERS_CEILING, description="Tickers per forecast or optimize request."
    )
    max_frontier_points: int = Field(
        50, ge=2, le=FRONTIER_POINTS_CEILING, description="Points per efficient frontier."
    )
    solver_time_limit_seconds: float = Field(
        10.0, gt=0, description="Per solve (each frontier point is one); over it: 422."
    )
    rate_per_second: float = Field(
        50.0, ge=0, description="Token-bucket refill per key (0 disables rate limiting)."
    )
    burst: int = Field(100, ge=1, description="Token-bucket size per key.")


class LifecycleSettings(BaseModel):
    """How the server notices new model versions, promotions and new features."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_interval_seconds: float = Field(
        10.0, ge=0, description="Model store, registry and features poll; 0 disables."
    )


class BatchingSettings(BaseModel):
    """Micro-batching of concurrent TensorFlow Serving ``:predict`` requests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_batch_size: int = Field(256, ge=1, description="Most instances run in one call.")
    max_wait_ms: float = Field(
        2.0, ge=0, description="Longest a request waits for others to join its batch."
    )
    max_enqueued_batches: int = Field(
        16,
        ge=1,
        description="Batches' worth of instances that may wait per model (TF Serving's "
        "max_enqueued_batches); past it a request is refused with 503 and Retry-After.",
    )
    xla: bool = Field(
        True,
        description="Compile the serving signature with XLA for allowed_batch_sizes when a "
        "version loads; it serves as loaded if a compile fails or its outputs differ.",
    )
    allowed_batch_sizes: tuple[int, ...] = Field(
        (1, 16, 64, 256),
        min_length=1,
        description="The batch sizes compiled with XLA (TF Serving's allowed_batch_sizes); "
        "every model call is padded or split into these sizes.",
    )

    inline_max_ms: float = Field(
        1.0,
        ge=0,
        description="A compiled model call timed at load under this runs on the event "
        "loop: a thread pool round trip costs 100-200 us of CPU, more than a small XLA "
        "call. 0 sends every call to the thread pool.",
    )
    xla_cache_dir: Path | None = Field(
        None,
        description="Where compiled XLA executables persist, so that the next worker or "
        "restart loads them instead of compiling (~2 s a batch size); None is "
        "<data_dir>/xla-cache.",
    )

    @field_validator("allowed_batch_sizes")
    @classmethod
    def _positive_sizes(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if any(size < 1 for size in sizes):
            raise ValueError(f"batch sizes must be at least 1, got {list(sizes)}")
        return tuple(sorted(set(sizes)))


class AuditSettings(BaseModel):
    """Where optimize, back-test and admin actions are recorded, how much and how long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        None, description="SQLAlchemy URL; None is SQLite in WAL mode at <data_dir>/audit.db."
    )
    max_stored_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest inputs or outputs JSON a row keeps whole; a larger one is "
        "replaced by a note with its SHA-256 and size (inputs_sha256 is always kept).",
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="Rows older than this are deleted, at start and then at most hourly, "
        "in the background; None keeps every row for ever.",
    )


class BacktestJobSettings(BaseModel):
    """Back-tests run over HTTP: where jobs are kept, how many run, what they read.

    Named apart from :class:`backtest.BacktestSettings`, one back-test's period and costs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        None,
        description="SQLAlchemy URL of the jobs; None is SQLite (WAL) at <data_dir>/backtests.db.",
    )
    output_dir: Path | None = Field(
        None, description="Each job writes <output_dir>/<id>/; None is <data_dir>/backtests."
    )
    max_concurrent: int = Field(
        1,
        ge=0,
        le=64,
        description="Worker processes per server process; 0: this server only queues jobs "
        "and another one sharing the database runs them.",
    )
    max_queued: int = Field(
        8, ge=1, le=10_000, description="Jobs waiting, counted in the database; over it: 429."
    )
    max_attempts: int = Field(
        3, ge=1, le=10, description="Starts of one job (restarts included) before it fails."
    )
    prices_file: Path | None = Field(
        None, description="CSV or Parquet prices as `ingest` reads them; None: the embedded set."
    )
    benchmark: str | None = Field(None, description="The index column of prices_file.")
    poll_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="How often a server looks for queued jobs."
    )
    stale_after_seconds: float = Field(
        60.0,
        ge=5,
        le=86_400,
        description="A running job whose server has not been heard of for this long is "
        "taken as dead and started again.",
    )


class Settings(BaseSettings):
    """Every setting of the service and the pipeline."""

    # Errors name the field and the rule, never the value: a misconfigured api_keys entry
    # may hold a key itself instead of its hash, and errors end up in logs.
    model_config = SettingsConfigDict(
        env_prefix="QUANTSERVE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    models_dir: Path = Path("models")
    docs_dir: Path = Field(
        Path("docs"), description="The dashboard's /model-card page renders model_card.md here."
    )
    model_name: str = Field("forecaster", pattern=r"^[A-Za-z0-9_.-]+$")
    host: str = "0.0.0.0"  # nosec B104  # a container listens on all its interfaces
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(
        2, ge=1, le=64, description="gunicorn worker processes; 1 runs a single uvicorn."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    cors_origins: tuple[str, ...] = ()
    tensorflow_threads: int = Field(
        1,
        ge=0,
        le=64,
        description="TensorFlow intra- and inter-op threads per server process (0: one per "
        "core). One halves the CPU of a small batch: idle pool threads spin.",
    )
    dev_mode: bool = Field(
        False,
        description="Serve without API keys (every caller is admin); warns at start. "
        "Refused in production when no keys are configured.",
    )
    api_keys: Annotated[tuple[ApiKey, ...], NoDecode] = Field(
        (), description="JSON list, or id:role:sha256 entries separated by commas."
    )
    protect_metrics: bool = Field(False, description="/metrics needs a key (any role).")

    ingest: IngestConfig = IngestConfig()
    spark: SparkConfig = SparkConfig()
    training: TrainingConfig = TrainingConfig()
    optimizer: OptimizerSettings = OptimizerSettings()
    limits: LimitSettings = LimitSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    batching: BatchingSettings = BatchingSettings()
    audit: AuditSettings = AuditSettings()
    backtests: BacktestJobSettings = BacktestJobSettings()
    stream: StreamConfig = StreamConfig()
    retrain: RetrainConfig = RetrainConfig()
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("api_keys", mode="before")
    @classmethod
    def _decode_api_keys(cls, value: Any) -> Any:
        return _parse_api_keys(value)

    @field_validator("api_keys")
    @classmethod
    def _refuse_duplicate_keys(cls, keys: tuple[ApiKey, ...]) -> tuple[ApiKey, ...]:
        ids = [key.id for key in keys]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"api_keys repeat the id {', '.join(repeated)}; ids must be unique")
        by_hash: dict[str, list[str]] = {}
        for key in keys:
            by_hash.setdefault(key.sha256, []).append(key.id)
        shared = [ids for ids in by_hash.values() if len(ids) > 1]
        if shared:
            raise ValueError(
                f"api_keys {' and '.join(shared[0])} have the same sha256: one key would have "
                "two identities; give each its own key"
            )
        return keys

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production" and "*" in self.cors_origins:
            raise ValueError(
                "cors_origins='*' is refused in production; list the front-ends' origins"
            )
        return self

    @property
    def raw_dir(self) -> Path:
        """Validated prices, quarantine, quality report and manifest."""
        return self.data_dir / "raw"

    @property
    def features_dir(self) -> Path:
        """The Spark feature table (Parquet partitioned by year)."""
        return self.data_dir / "features"

    @property
    def landing_dir(self) -> Path:
        """Bar files `quantserve stream` picks up: stream.landing_dir or <data_dir>/landing."""
        return self.stream.landing_dir or self.data_dir / "landing"

    @property
    def stream_checkpoint_dir(self) -> Path:
        """The stream's checkpoint: ``stream.checkpoint_dir`` or <data_dir>/stream-checkpoint."""
        return self.stream.checkpoint_dir or self.data_dir / "stream-checkpoint"

    @property
    def xla_cache_dir(self) -> Path:
        """Compiled XLA executables: ``batching.xla_cache_dir``, else ``<data_dir>/xla-cache``."""
        return self.batching.xla_cache_dir or self.data_dir / "xla-cache"

    @property
    def audit_url(self) -> str:
        """The audit database: ``audit.url``, else SQLite at ``<data_dir>/audit.db``."""
        return self.audit.url or f"sqlite:///{(self.data_dir / 'audit.db').resolve()}"

    @property
    def backtests_url(self) -> str:
        """The back-test jobs: ``backtests.url``, else SQLite at ``<data_dir>/backtests.db``."""
        return self.backtests.url or f"sqlite:///{(self.data_dir / 'backtests.db').resolve()}"

    @property
    def backtests_dir(self) -> Path:
        """Where each back-test job writes its folder, ``<id>/`` (absolute)."""
        return (self.backtests.output_dir or self.data_dir / "backtests").resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment, then the YAML file."""
        yaml_file = Path(os.environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE))
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file),
        )


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once (tests override the dependency instead)."""
    return Settings()
