"""Operations settings (``MEDICORE_*``), apart from the core server settings."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ObservabilitySettings(BaseSettings):
    """Thresholds for logging, metrics and readiness; every field has an env variable."""

    model_config = SettingsConfigDict(env_prefix="MEDICORE_", extra="ignore")

    slow_request_ms: float = 1000.0  # MEDICORE_SLOW_REQUEST_MS: log the query shape above this
    log_level: str = "INFO"  # MEDICORE_LOG_LEVEL for the JSON "medicore" loggers
    json_logs: bool = True  # MEDICORE_JSON_LOGS=false leaves logging configuration alone
    metrics_enabled: bool = True  # MEDICORE_METRICS_ENABLED: serve /metrics
    disk_min_free_mb: int = 512  # MEDICORE_DISK_MIN_FREE_MB: readiness fails below it
    data_dir: str | None = None  # MEDICORE_DATA_DIR: watched for disk space (default: store)
    check_timeout_s: float = 2.0  # MEDICORE_CHECK_TIMEOUT_S: one readiness check's budget
