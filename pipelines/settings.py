"""All configuration, in one object. Nothing else in the code base reads the environment.

Values come from, highest priority first: constructor arguments, `SUMMARIZER_*` environment
variables, the YAML file named by `SUMMARIZER_CONFIG_FILE`, then the defaults below.
Every field is documented in the settings table of docs/configuration.md.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

CONFIG_FILE_ENV = "SUMMARIZER_CONFIG_FILE"
REDACTABLE_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS")
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IN", "CA", "AU", "BR", "IL", "CH", "SE")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUMMARIZER_", extra="forbid", frozen=True)

    # Engine and models
    engine: Literal["extractive", "abstractive"] = "extractive"
    encoder_model: str = "summarizer-encoder:latest"
    # auto: ONNX Runtime int8 on CPU, PyTorch on a GPU (pipelines/engines/runtime.py).
    encoder_runtime: Literal["auto", "torch", "onnx", "onnx-int8"] = "auto"
    abstractive_model: str = "summarizer-abstractive:latest"
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    gpu_type: str = "nvidia-l4"

    # Styles
    styles_file: Path | None = None
    default_style: str = "news"

    # Normalization (before redaction and the model)
    strip_quoted_replies: bool = True
    strip_signatures: bool = True
    strip_footers: bool = True
    footer_patterns: list[str] = []
    max_html_chars: int = Field(1_000_000, gt=0)
    # Tags counted before any parser runs: a tag bomb costs trafilatura seconds (413 above).
    max_html_tags: int = Field(50_000, gt=0)

    # PII redaction
    redact: bool = True
    redact_entities: list[str] = list(REDACTABLE_ENTITIES)
    redact_patterns: dict[str, str] = {}
    redact_phone_regions: list[str] = list(DEFAULT_PHONE_REGIONS)
    redact_score_threshold: float = Field(0.3, ge=0.0, le=1.0)
    # spaCy's small English NER pipeline (`python -m models import-default`), or a token-
    # classification model from the store; "" or "none" turns name redaction off.
    redact_ner_model: str | None = "summarizer-ner:latest"
    redact_ner_entities: list[Literal["PERSON", "LOCATION", "ORGANIZATION"]] = ["PERSON", "LOCATION", "ORGANIZATION"]

    # RAG: the knowledge index over the deployment's own documentation
    rag_dir: Path = Path("rag-index")
    rag_store: Literal["faiss", "qdrant"] = "faiss"
    rag_qdrant_location: str | None = None
    rag_chunk_words: int = Field(120, gt=10, le=400)
    rag_top_k: int = Field(5, gt=0, le=50)
    rag_max_documents_per_request: int = Field(64, gt=0)

    # Shared state (docs/scaling.md): set, the job store and the knowledge index live in
    # PostgreSQL, shared by every replica; unset, in SQLite and FAISS files on this replica's disk.
    database_url: SecretStr | None = None
    database_pool_size: int = Field(10, gt=0)
    # How long a call waits for a connection before answering 503 (PostgreSQL down or pool busy).
    database_timeout_s: float = Field(5.0, gt=0)

    # Batch route and durable jobs
    batch_max_documents: int = Field(64, gt=0)
    batch_max_body_bytes: int = Field(16_777_216, gt=0)
    jobs_dir: Path = Path("jobs")
    jobs_data_dir: Path | None = None
    jobs_max_upload_bytes: int = Field(4_294_967_296, gt=0)
    jobs_max_line_bytes: int = Field(16_777_216, gt=0)
    jobs_batch_documents: int = Field(32, gt=0)
    jobs_concurrency: int = Field(2, gt=0)
    jobs_max_attempts: int = Field(5, gt=0)
    jobs_retry_backoff_s: float = Field(2.0, gt=0)
    jobs_retry_backoff_max_s: float = Field(120.0, gt=0)
    # PostgreSQL backend: a replica's claim on a document lasts this long unless renewed (every
    # third of it); a replica that dies holds its documents at most this long.
    jobs_lease_s: float = Field(60.0, ge=3)

    # Priority on the model worker (pipelines/scheduling/): live first, then long documents, then
    # jobs; each lower lane keeps this share of engine time while it has work, so none starves.
    jobs_min_share: float = Field(0.1, ge=0.0, le=0.9)
    long_min_share: float = Field(0.2, ge=0.0, le=0.9)
    # A live document with at least this many characters after normalization goes to the long lane.
    long_document_chars: int = Field(20_000, gt=0)
    # What this replica does: `all` (live routes and jobs), `live` (no job runner) or `jobs` (runs
    # jobs; the summarizing routes answer 503). Split roles need the shared PostgreSQL state.
    role: Literal["all", "live", "jobs"] = "all"

    # Auth: bearer tokens (pipelines/auth/store.py); off only when neither source is set
    auth_tokens_file: Path | None = None
    auth_tokens: str | None = None
    auth_required: bool = False
    auth_protect_metrics: bool = False

    # Telemetry: traces (OTLP over HTTP) and logs
    trace_otlp_endpoint: str | None = None
    trace_sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    trace_otlp_headers: dict[str, str] = {}
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Limits
    max_input_chars: int = Field(100_000, gt=0)
    max_body_bytes: int = Field(1_048_576, gt=0)
    request_timeout_s: float = Field(60.0, gt=0)
    max_concurrency: int = Field(64, gt=0)
    retry_after_s: int = Field(2, gt=0)

    # Adaptive batching (model service)
    max_batch_size: int = Field(32, gt=0)
    # As long as the entry's deadline: the batcher then sheds only what would time out anyway, and
    # overload is the admission limit's fast 429 (bench/perf.py measured 10 s shedding at c=64 on CPU).
    max_latency_ms: int = Field(60_000, gt=0)
    max_batch_tokens: int = Field(16_384, gt=0)
    encoder_batch_tokens: int = Field(2_048, gt=0)
    max_sentence_chars: int = Field(2_000, gt=0)
    # How often BentoML's batcher polls its queue while a batch runs. Unset: 1 ms (BentoML's own)
    # on a GPU, where batches take milliseconds; 10 ms on CPU, where they take seconds and every
    # wake-up takes the GIL from the thread running the model (pipelines/engines/grouping.py).
    dispatcher_tick_ms: float | None = Field(None, gt=0, le=100)
    # Intra-op threads of the model worker's runtime (torch or ONNX Runtime); 0 keeps its default.
    torch_threads: int = Field(0, ge=0)

    # Abstractive generation
    max_reduce_rounds: int = Field(4, gt=0)

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if value not in {"auto", "cpu", "mps"} and not value.startswith("cuda"):
            raise ValueError(f"device must be auto, cpu, mps or cuda[:N], got {value!r}")
        return value

    @property
    def ner_model(self) -> str | None:
        """The NER model redaction loads, or None: nothing to load or pack into the Bento."""
        return self.redact_ner_model if self.redact else None

    @field_validator("redact_ner_model")
    @classmethod
    def _no_ner_model(cls, value: str | None) -> str | None:
        return None if value is None or value.strip().lower() in ("", "none") else value.strip()

    @field_validator("styles_file")
    @classmethod
    def _check_styles_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"styles_file must be an existing YAML file, got {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _check_body_fits_text(self) -> Settings:
        if self.max_body_bytes < self.max_input_chars:
            raise ValueError(
                f"max_body_bytes must be >= max_input_chars ({self.max_input_chars}), got {self.max_body_bytes}"
            )
        return self

    @model_validator(mode="after")
    def _check_runtime_fits_device(self) -> Settings:
        if self.encoder_runtime in ("onnx", "onnx-int8") and self.device not in ("auto", "cpu"):
            raise ValueError(
                f"encoder_runtime={self.encoder_runtime} runs on CPU only (the onnxruntime CPU build); "
                f"use encoder_runtime=torch or auto with device={self.device}"
            )
        return self

    @model_validator(mode="after")
    def _check_role_has_shared_state(self) -> Settings:
        if self.role != "all" and self.database_url is None:
            raise ValueError(
                f"role={self.role} splits live and job work across replicas, which must share one job store: "
                "set database_url (PostgreSQL), or use role=all"
            )
        return self

    @model_validator(mode="after")
    def _check_shares_leave_live_traffic(self) -> Settings:
        if self.jobs_min_share + self.long_min_share > 0.9:
            raise ValueError(
                f"jobs_min_share ({self.jobs_min_share}) + long_min_share ({self.long_min_share}) must be at most 0.9: "
                "live requests need the rest of the model's time"
            )
        return self

    @model_validator(mode="after")
    def _check_one_index_backend(self) -> Settings:
        if self.database_url is not None and self.rag_store != "faiss":
            raise ValueError(
                f"rag_store={self.rag_store} keeps the index in a folder, but database_url is set and the index lives in "
                "PostgreSQL: unset one of them"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            if not Path(config_file).is_file():
                raise ValueError(f"{CONFIG_FILE_ENV} must name an existing YAML file, got {config_file!r}")
            sources += (YamlConfigSettingsSource(settings_cls, yaml_file=config_file),)
        return sources


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()

