"""--card-info files: TOML and JSON read alike; every bad key or type is named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cloud.card_info import CardInfo, card_info_from_run, load_card_info, parse_card_info
from edge.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "card-info.toml"


def test_the_shipped_example_is_valid_and_fills_every_field() -> None:
    info = load_card_info(EXAMPLE)
    assert set(info.to_dict()) == {
        "owners", "license", "description", "intended_uses", "out_of_scope_uses",
        "limitations", "contact", "citation",
    }  # fmt: skip
    assert info.source == "card-info.toml"


def test_toml_and_json_give_the_same_fields(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        'owners = ["Vision team"]\nlicense = "Apache-2.0"\n'
        'intended_uses = ["sorting parts on line 3"]\ncitation = """@misc{x,\n title={X}}"""\n'
    )
    doc = {
        "owners": ["Vision team"],
        "license": "Apache-2.0",
        "intended_uses": ["sorting parts on line 3"],
        "citation": "@misc{x,\n title={X}}",
    }
    js = tmp_path / "c.json"
    js.write_text(json.dumps(doc))
    assert load_card_info(toml) == load_card_info(js)
    assert load_card_info(js).to_dict() == doc


def test_a_single_string_counts_as_a_one_item_list() -> None:
    info = parse_card_info({"owners": "  Ana  "}, "x.toml")
    assert info.owners == ("Ana",)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"licence": "MIT"}, "unknown card info key(s) 'licence' (did you mean 'license'?)"),
        ({"owner": ["a"], "zzz": 1}, "'owner' (did you mean 'owners'?), 'zzz'"),
        ({"license": 3}, "license must be a string, got int"),
        ({"license": "  "}, "license is empty"),
        ({"owners": {"a": 1}}, "owners must be a list of strings, got a table"),
        ({"intended_uses": ["ok", 2]}, "intended_uses[1] must be a string, got int"),
        ({"limitations": ["x"] * 51}, "limitations has 51 entries; at most 50"),
        ({"description": "x" * 4001}, "description is 4001 characters long"),
    ],
)
def test_bad_fields_are_named(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_card_info(doc, "card.toml")


def test_a_document_that_is_not_a_table_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be a table of fields, got a list"):
        parse_card_info(["owners"], "card.json")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("c.yaml", "owners: [a]", "use a .toml or .json file"),
        ("c.toml", "owners = [", "invalid TOML"),
        ("c.json", "{owners", "invalid JSON"),
        ("c.toml", None, "cannot read"),
    ],
)
def test_bad_files_are_one_clear_error(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_card_info(path)


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b'owners = ["\xff"]')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_card_info(path)


def test_run_json_round_trip() -> None:
    info = CardInfo(owners=("a",), license="MIT")
    assert card_info_from_run({"card_info": info.to_dict()}) == info
    assert card_info_from_run({}) is None
    assert card_info_from_run({"card_info": {}}) is None
    with pytest.raises(ConfigError, match=re.escape("run.json card_info: unknown")):
        card_info_from_run({"card_info": {"nope": 1}})
