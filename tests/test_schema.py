import pyarrow as pa
import pytest

from corpusmill.errors import InputError
from corpusmill.schema import Record, arrow_schema, content_id, from_row, to_row

SOURCE = {"kind": "import", "uri": "questions.csv", "dataset": "q"}


def test_text_record_round_trips_through_json_and_parquet_row():
    record = Record(
        id="q-1", text="Where is my parcel?", label="track_parcel", source=SOURCE, meta={"chars": 19, "lang": "en"}
    )
    assert Record.from_json(record.to_json()) == record
    table = pa.Table.from_pylist([to_row(record)], schema=arrow_schema(multi_label=False))
    assert from_row(table.to_pylist()[0]) == record


def test_chat_record_with_multi_label_and_augmentation_round_trips():
    record = Record(
        id="c-1",
        messages=[{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}],
        label=["greeting", "smalltalk"],
        group="conv-9",
        source=SOURCE,
        parent_id="c-0",
        augmentation={"method": "backtranslation", "params": {"pivot": "de", "similarity": 0.91}},
    )
    table = pa.Table.from_pylist([to_row(record)], schema=arrow_schema(multi_label=True))
    assert from_row(table.to_pylist()[0]) == record
    assert record.body == "Hi?\nHello."


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"id": "x", "source": SOURCE}, "exactly one of 'text' or 'messages'"),
        ({"id": "x", "text": "a", "messages": [{"role": "user", "content": "b"}], "source": SOURCE}, "exactly one"),
        ({"id": "x", "messages": [{"role": "robot", "content": "b"}], "source": SOURCE}, "messages[0].role"),
        ({"id": "x", "text": "a", "source": {"kind": "ftp", "uri": "u", "dataset": "d"}}, "source.kind"),
        ({"id": "x", "text": "a", "label": 3, "source": SOURCE}, "label"),
        ({"id": "x", "text": "a", "source": SOURCE, "colour": "red"}, "colour: Extra inputs"),
    ],
)
def test_validation_errors_name_the_field(data, field):
    with pytest.raises(InputError) as info:
        Record.from_dict(data, "in.jsonl:3")
    message = str(info.value)
    assert message.startswith("in.jsonl:3: ")
    assert field in message


def test_content_id_is_stable_and_scoped_by_dataset():
    assert content_id("a", "same text", None) == content_id("a", "same text", None)
    assert content_id("a", "same text", None) != content_id("b", "same text", None)
    assert content_id("a", "same text", None) != content_id("a", "other text", None)
