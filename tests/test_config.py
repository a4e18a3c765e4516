import json
import re

import pytest

from corpusmill.config import load_config
from corpusmill.errors import ConfigError

SOURCE = {"type": "jsonl", "path": "in.jsonl"}


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"sources": [SOURCE], "split": {"ratios": {"train": 0.8, "test": 0.1}}}, "split.ratios: must sum to 1"),
        ({"sources": [SOURCE], "split": {"ratios": {"dev": 0.5, "test": 0.5}}}, "split.ratios: must name a 'train'"),
        ({"sources": [SOURCE], "clean": [{"step": "length", "min_chars": "many"}]}, "clean[0].min_chars: "),
        (
            {"sources": [SOURCE], "clean": [{"step": "normalize"}, {"step": "lenght"}]},
            "clean[1].step: unknown clean step 'lenght' (known: ",
        ),
        (
            {"sources": [SOURCE], "clean": [{"step": "length", "min_char": 3}]},
            "clean[0].min_char: unknown key (allowed: min_chars, max_chars, min_words, max_words",
        ),
        ({"sources": [{"type": "xml", "path": "a"}]}, "sources[0].type: unknown source step 'xml'"),
        ({"sources": [{"type": "csv"}]}, "sources[0].path: Field required"),
        (
            {"sources": [SOURCE], "colour": "red"},
            "colour: unknown key (allowed: sources, clean, split, augment, release, seed, work_dir)",
        ),
        (
            {"sources": [SOURCE], "release": {"name": "a", "versoin": "1"}},
            "release.versoin: unknown key (allowed: name,",
        ),
        ({"sources": []}, "sources: List should have at least 1 item"),
        (
            {"sources": [SOURCE], "split": {"method": "random", "ratio": 0.8}},
            "split.ratio: unknown key (allowed: ratios",
        ),
    ],
)
def test_config_errors_name_the_key_path(tmp_path, make_config, sections, expected):
    path = make_config(tmp_path, **sections)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_release_name_cannot_escape_the_output_dir(tmp_path, make_config):
    path = make_config(tmp_path, sources=[SOURCE], release={"name": "../../etc", "version": "1"})
    with pytest.raises(ConfigError, match=r"release\.name: "):
        load_config(path)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "build.yaml"
    path.write_text("sources:\n  - type: jsonl\n    path: [unclosed\nrelease: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"build\.yaml: line \d+: invalid YAML"):
        load_config(path)


def test_a_valid_config_resolves_paths_against_its_own_directory(tmp_path, make_config):
    config = load_config(make_config(tmp_path, sources=[SOURCE]))
    assert config.release_dir == tmp_path / "releases" / "test" / "1.0.0"
    assert config.make_readers()[0].params.path == tmp_path / "in.jsonl"
    assert config.make_readers()[0].uri == "in.jsonl"
    assert config.make_splitter().split_names == ["train", "validation", "test"]


def test_the_steps_command_lists_every_registered_step_and_shows_one_steps_parameters():
    from typer.testing import CliRunner

    from corpusmill.cli import app
    from corpusmill.registry import registered_steps

    listing = CliRunner().invoke(app, ["steps"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    rows = {tuple(cell.strip() for cell in line.split("│")[1:3]) for line in listing.output.splitlines()}
    expected = {(cls.kind, cls.name) for cls in registered_steps()}
    assert len(expected) > 25 and expected <= rows
    assert all((cls.__doc__ or "").strip() for cls in registered_steps())  # each one has its line to show
    one = CliRunner().invoke(app, ["steps", "near_dedup"], env={"COLUMNS": "200"})
    assert one.exit_code == 0
    assert re.search(r"threshold\s*│\s*float\s*│\s*0\.8\s*│\s*Estimated Jaccard similarity", one.output)
    assert re.search(r"shingle\s*│\s*Literal\['words', 'chars'\]\s*│\s*'words'", one.output)  # brackets kept
    unknown = CliRunner().invoke(app, ["steps", "near_dedupe"])
    assert unknown.exit_code == 2 and "no step named 'near_dedupe' (known: " in unknown.output


def test_the_json_schema_validates_the_demo_config_and_refuses_a_misspelt_key(tmp_path):
    import copy

    import jsonschema
    import yaml
    from typer.testing import CliRunner

    from corpusmill.cli import app
    from corpusmill.demo import DEMO_CONFIG

    result = CliRunner().invoke(app, ["schema", "--out", str(tmp_path / "schema.json")])
    assert result.exit_code == 0, result.output
    validator = jsonschema.Draft202012Validator(json.loads((tmp_path / "schema.json").read_text()))
    demo = yaml.safe_load(DEMO_CONFIG)
    assert list(validator.iter_errors(demo)) == []
    for where, key in ((("clean", 1), "min_char"), (("release",), "versoin"), ((), "colour"), (("split",), "ratio")):
        bad = copy.deepcopy(demo)
        node = bad
        for part in where:
            node = node[part]
        node[key] = 3
        assert list(validator.iter_errors(bad)), (where, key)
    wrong_type = copy.deepcopy(demo)
    wrong_type["clean"][1]["min_chars"] = "eight"
    assert list(validator.iter_errors(wrong_type))
    # The same build as one steps list validates too, and the same mistakes are caught in it.
    listed = {
        "seed": demo.get("seed", 0),
        "steps": [
            *({"read": s.pop("type"), **s} for s in copy.deepcopy(demo["sources"])),
            *({"clean": s.pop("step"), **s} for s in copy.deepcopy(demo["clean"])),
            {
                "split": demo["split"].get("method", "stratified"),
                **{k: v for k, v in demo["split"].items() if k != "method"},
            },
            *({"augment": s.pop("step"), **s} for s in copy.deepcopy(demo.get("augment", []))),
            {"write": "release", **demo["release"]},
        ],
    }
    assert list(validator.iter_errors(listed)) == []
    for index, key in ((1, "min_char"), (-1, "versoin"), (0, "colour")):
        bad = copy.deepcopy(listed)
        bad["steps"][index][key] = 3
        assert list(validator.iter_errors(bad)), (index, key)
    assert list(validator.iter_errors({**listed, "clean": []}))  # both forms at once
    assert list(validator.iter_errors({**listed, "steps": [{"clean": "no_such_step"}, listed["steps"][-1]]}))


def test_help_keeps_bracketed_text():
    from typer.testing import CliRunner

    from corpusmill.cli import app

    result = CliRunner().invoke(app, ["build", "--help"], env={"COLUMNS": "200"})
    assert "Worker processes for per-record steps [default: cores]." in " ".join(result.output.split())
