"""docs/configuration.md is generated from the loader: it must say what the loader does."""

from __future__ import annotations

from dataclasses import fields

from covid19_lake import config
from local import config_docs


def test_the_committed_configuration_doc_is_the_generated_one() -> None:
    committed = config_docs.OUTPUT.read_text(encoding="utf-8")
    assert committed == config_docs.render(), "docs/configuration.md drifted: run python -m local.config_docs"


def test_the_doc_names_every_key_and_environment_variable() -> None:
    text = config_docs.render()
    for section in fields(config.Config):
        assert f"### `{section.name}`:" in text
        for f in fields(section.type if isinstance(section.type, type) else getattr(config, section.type)):
            assert f"| `{f.name}` |" in text, f"{section.name}.{f.name}"
    for f in fields(config.ParseTimeSettings):
        assert f"| `{f.metadata['env']}` |" in text
