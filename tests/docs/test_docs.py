"""The docs site builds strictly, the README stays a front door, and no setting goes undocumented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pipelines.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README_MAX_LINES = 250
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_docs_site_builds_in_strict_mode(tmp_path: Path) -> None:
    # mkdocs.yml turns broken links, unknown anchors and pages missing from the nav into warnings,
    # and --strict turns any warning into a failed build.
    mkdocs = Path(sys.executable).with_name("mkdocs")
    proc = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_the_readme_fits_on_a_few_screens() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


def test_every_relative_link_in_the_readme_resolves() -> None:
    targets = [t for t in _LINK.findall((REPO / "README.md").read_text()) if "://" not in t and not t.startswith("mailto:")]
    assert targets, "the README links to no docs page"
    missing = [t for t in targets if not (REPO / t).exists()]
    assert missing == []


def test_every_page_in_docs_is_linked_from_the_readme() -> None:
    linked = set(_LINK.findall((REPO / "README.md").read_text()))
    pages = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    assert pages - linked == set()


def test_every_setting_is_in_the_configuration_page() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    prefix = Settings.model_config.get("env_prefix", "")
    missing = [name for name in Settings.model_fields if f"{prefix}{name}".upper() not in page]
    assert missing == []
