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
        ({"sources": [SOURCE], "clean": [{"step": "length", "min_char": 3}]}, "clean[0].min_char: Extra inputs"),
        ({"sources": [{"type": "xml", "path": "a"}]}, "sources[0].type: unknown source step 'xml'"),
        ({"sources": [{"type": "csv"}]}, "sources[0].path: Field required"),
        ({"sources": [SOURCE], "colour": "red"}, "colour: unknown key"),
        ({"sources": []}, "sources: List should have at least 1 item"),
        ({"sources": [SOURCE], "split": {"method": "random", "ratio": 0.8}}, "split.ratio: Extra inputs"),
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
