"""A private BentoML model store for every test here, plus tiny model folders to import.

bentoml resolves BENTOML_HOME lazily, on first use, and caches the home and the model store
built from it in simple_di singletons (`BentoMLContainer`). Setting the environment variable is
therefore not enough once anything in this process has touched the store: the providers are
overridden too. `Provider.patch` restores the previous override on exit (it has no try/finally,
which is fine in a fixture: pytest resumes the generator normally even when the test failed).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.models import ModelStore
from bentoml._internal.utils.analytics import usage_stats
from transformers import BertConfig, BertModel

from models.store import ImportResult, import_default_encoder

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(f"w{i}" for i in range(27))]


@contextmanager
def isolated_bentoml_home(home: Path) -> Iterator[Path]:
    """Point bentoml (and child processes) at `home`; only for use inside fixtures, see above."""
    models = home / "models"
    for sub in ("bentos", "models", "envs", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTOML_HOME", str(home))
        # Each model save otherwise posts usage analytics to t.bentoml.com, synchronously.
        mp.setenv("BENTOML_DO_NOT_TRACK", "true")
        usage_stats.do_not_track.cache_clear()
        with (
            BentoMLContainer.bentoml_home.patch(str(home)),
            BentoMLContainer.model_store_dir.patch(str(models)),
            BentoMLContainer.model_store.patch(ModelStore(models)),
        ):
            yield home
    usage_stats.do_not_track.cache_clear()


@pytest.fixture(autouse=True)
def bentoml_home(tmp_path: Path) -> Iterator[Path]:
    """Every test gets an empty store of its own."""
    with isolated_bentoml_home(tmp_path / "bentoml-home") as home:
        yield home


@pytest.fixture(scope="session")
def _encoder_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ImportResult]:
    # The real encoder is ~90 MB: import it once per session into a store of its own, and leave that
    # store again at once, so nothing stays patched for the test modules that run afterwards.
    with isolated_bentoml_home(tmp_path_factory.mktemp("encoder-home")) as home:
        return home, import_default_encoder()


@pytest.fixture
def encoder_store(bentoml_home: Path, _encoder_home: tuple[Path, ImportResult]) -> Iterator[ImportResult]:
    """The shared store that holds the default encoder (overrides the per-test empty store)."""
    home, result = _encoder_home
    with isolated_bentoml_home(home):
        yield result


def build_tiny_bert(folder: Path) -> Path:
    """A BERT encoder of a few kilobytes with a WordPiece vocab: a valid model folder in a second."""
    config = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    BertModel(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    return folder


@pytest.fixture(scope="session")
def _tiny_bert_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-master") / "tiny-bert")


@pytest.fixture
def tiny_bert(_tiny_bert_master: Path, tmp_path: Path) -> Path:
    """A fresh copy of the tiny model folder that the test may change."""
    return Path(shutil.copytree(_tiny_bert_master, tmp_path / "tiny-bert"))
