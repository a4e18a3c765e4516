"""The web page's API and pages over a real release (the demo's, built twice: 1.0.0, then 1.1.0
with new questions and ``split.previous``): sign-in and CSRF, uploads, server-side record
pages and filters, rejects with scores, augmented records beside their parents, the version
diff, offline docs, and escaping of untrusted record text."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from corpusmill.config import load_config
from corpusmill.demo import prepare_demo
from corpusmill.executor import LocalExecutor
from corpusmill.service import create_app

TOKEN = "web-token-93ab"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RELEASE = "/releases/parcelly-helpdesk"
SCRIPT = "<script>window.__xss = 1</script> Where is my parcel, please?"
RELABELLED = "Can you tell me where my package is?,track_parcel"
NEW_QUESTIONS = [
    (SCRIPT, "track_parcel", "delivery"),
    ("Has my refund for the returned boots gone through yet?", "refund_status", "after_sales"),
    ("The courier left a card but I was at home all day", "missed_delivery", "delivery"),
    ("Which lockers near the station take large parcels?", "locker_pickup", "delivery"),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The demo's workspace with release 1.0.0, and 1.1.0: four more questions (one with a
    ``<script>`` in it), and the previous release's splits kept."""
    workspace = tmp_path_factory.mktemp("web")
    config = prepare_demo(workspace)
    LocalExecutor(load_config(config), workers=1).build()
    with (workspace / "inputs" / "questions.csv").open("a", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(NEW_QUESTIONS)
    data = yaml.safe_load(config.read_text())
    data["release"]["version"] = "1.1.0"
    data["split"]["previous"] = "releases/parcelly-helpdesk/1.0.0"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    LocalExecutor(load_config(config), workers=1).build()
    questions = workspace / "inputs" / "questions.csv"  # 1.2.0: one question relabelled, another seed, no previous
    questions.write_text(questions.read_text().replace(RELABELLED, RELABELLED.replace("track_parcel", "refund_status")))
    data["release"]["version"], data["seed"] = "1.2.0", 99
    del data["split"]["previous"]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    LocalExecutor(load_config(config), workers=1).build()
    return workspace


@pytest.fixture
def client(workspace):
    with TestClient(create_app(workspace, TOKEN, max_upload=2_000)) as client:
        yield client


def csrf_of(html: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]*)">', html)[1]


def sign_in(client: TestClient) -> str:
    response = client.post("/session", data={"token": TOKEN, "next": "/ui/jobs"})
    assert response.status_code == 200 and response.url.path == "/ui/jobs"
    return csrf_of(response.text)


def jsonl(workspace: Path, version: str, split: str) -> list[dict]:
    path = workspace / "releases" / "parcelly-helpdesk" / version / "jsonl" / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sign_in_gives_a_session_cookie_not_the_token_and_state_changes_need_csrf(client):
    first = client.get("/ui/jobs", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/signin?next=%2Fui%2Fjobs"
    wrong = client.post("/session", data={"token": "nope", "next": "/ui/jobs"})
    assert wrong.status_code == 401 and "not this service" in wrong.text and "corpusmill_session" not in client.cookies
    response = client.post("/session", data={"token": TOKEN, "next": "/ui/jobs"}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    csrf = csrf_of(client.get("/ui/jobs").text)
    assert client.get("/jobs").status_code == 200  # the cookie signs API reads in
    body = {"kind": "build", "config_yaml": "seed: 1\n"}
    assert client.post("/jobs", json=body).status_code == 403  # a cookie alone cannot change state
    assert client.post("/jobs", json=body, headers={"X-CSRF-Token": "f" * 64}).status_code == 403
    assert client.post("/jobs", json=body, headers={"X-CSRF-Token": csrf}).status_code == 422  # past CSRF
    assert client.post("/session/end").status_code == 403  # signing out is a state change too
    assert client.post("/session/end", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/jobs").status_code == 401  # the cookie is gone
    client.post("/session", data={"token": TOKEN, "next": "/ui/jobs"})
    csrf = csrf_of(client.get("/ui/jobs").text)
    client.cookies.clear()
    assert client.post("/jobs", json=body, headers=AUTH).status_code == 422  # the bearer token needs no CSRF
    assert client.post("/jobs", json=body, headers={"X-CSRF-Token": csrf}).status_code == 401
    elsewhere = client.post("/session", data={"token": TOKEN, "next": "//evil.example/x"}, follow_redirects=False)
    assert elsewhere.headers["location"] == "/ui/jobs"
    client.cookies.clear()
    link = client.get(f"/ui/releases?token={TOKEN}", headers={"Accept": "text/html"}, follow_redirects=False)
    assert (
        link.status_code == 303
        and link.headers["location"] == "/ui/releases"
        and TOKEN not in link.headers["set-cookie"]
    )


def test_yaml_submissions_name_the_line_and_refuse_aliases(client):
    csrf = sign_in(client)
    headers = {"X-CSRF-Token": csrf}
    broken = client.post("/jobs", json={"kind": "build", "config_yaml": "seed: 1\nsources: [\n"}, headers=headers)
    assert broken.status_code == 422 and broken.json()["detail"][0]["msg"].startswith("line 3: invalid YAML")
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    refused = client.post("/jobs", json={"kind": "build", "config_yaml": bomb}, headers=headers)
    assert refused.status_code == 422 and "aliases are not accepted" in refused.json()["detail"][0]["msg"]
    unknown = client.post("/jobs", json={"kind": "build", "config_yaml": "seed: 1\nsoruces: []\n"}, headers=headers)
    assert unknown.json()["detail"][0]["loc"] == ["body", "config_yaml", "soruces"]
    deep = client.post("/jobs", json={"kind": "build", "config_yaml": "a: " + "[" * 200_000}, headers=headers)
    assert deep.status_code == 422 and "nested deeper than 32 levels" in deep.json()["detail"][0]["msg"]
    both = client.post("/jobs", json={"kind": "build", "config": {}, "config_yaml": "seed: 1"}, headers=headers)
    assert both.status_code == 422


def test_uploads_are_capped_named_safely_listed_and_never_half_written(client, workspace):
    csrf = sign_in(client)
    headers = {"X-CSRF-Token": csrf}
    stored = client.put("/inputs/My Questions (2).csv", content=b"text,label\nhello there,greet\n", headers=headers)
    assert stored.status_code == 201 and stored.json() == {"name": "My_Questions_2_.csv", "bytes": 29, "format": "csv"}
    again = client.put("/inputs/My Questions (2).csv", content=b"text\n", headers=headers)
    assert again.status_code == 409
    replaced = client.put("/inputs/My Questions (2).csv?replace=true", content=b'{"text": "hi"}\n', headers=headers)
    assert replaced.json()["format"] == "jsonl"
    assert client.put("/inputs/...", content=b"x", headers=headers).status_code == 422
    assert client.put("/inputs/.hidden", content=b"x", headers=headers).json()["name"] == "hidden"
    too_big = client.put("/inputs/big.csv", content=b"x" * 2_001, headers=headers)
    assert too_big.status_code == 413

    def chunks():  # no Content-Length: the handler counts what arrives
        for _ in range(5):
            yield b"y" * 500

    assert client.put("/inputs/streamed.csv", content=chunks(), headers=headers).status_code == 413
    listed = {entry["name"]: entry for entry in client.get("/inputs").json()}
    assert "big.csv" not in listed and "streamed.csv" not in listed
    assert not [p for p in (workspace / "inputs").iterdir() if p.name.startswith(".")]  # no temp file left
    assert listed["questions.csv"]["format"] == "csv" and listed["helpcentre.jsonl"]["format"] == "jsonl"
    assert listed["My_Questions_2_.csv"]["bytes"] == len(b'{"text": "hi"}\n')
    assert client.put("/inputs/x.csv", content=b"x").status_code == 403  # the session without CSRF


def test_record_pages_cover_the_split_once_and_filter_server_side(client, workspace):
    train = jsonl(workspace, "1.1.0", "train")
    seen, offset = [], 0
    while True:
        page = client.get(
            f"{RELEASE}/1.1.0/records", params={"split": "train", "offset": offset, "limit": 200}, headers=AUTH
        )
        data = page.json()
        assert data["total"] == len(train) and len(data["rows"]) <= 200
        seen += [row["id"] for row in data["rows"]]
        offset += 200
        if offset >= data["matched"]:
            break
    assert seen == [record["id"] for record in train]  # every record once, in release order

    def query(**params) -> dict:
        response = client.get(
            f"{RELEASE}/1.1.0/records", params={"split": "train", "limit": 200, **params}, headers=AUTH
        )
        assert response.status_code == 200, response.text
        return response.json()

    refunds = query(label="refund_status")
    assert refunds["matched"] == sum(r["label"] == "refund_status" for r in train) > 0
    assert {row["label"] for row in refunds["rows"]} == {"refund_status"}
    assert "refund_status" in refunds["labels"] and set(refunds["sources"]) == {
        "parcelly-questions",
        "parcelly-help-centre",
    }
    parcel = query(q="PARCEL")
    expected = [
        r["id"]
        for r in train
        if "parcel" in (r["text"] or "").lower() or any("parcel" in m["content"].lower() for m in r["messages"] or [])
    ]
    assert [row["id"] for row in parcel["rows"]] == expected[:200] and parcel["matched"] == len(expected)
    site = query(source="parcelly-help-centre", augmented=False)
    assert site["matched"] == sum(
        r["source"]["dataset"] == "parcelly-help-centre" and not r["parent_id"] for r in train
    )
    short = query(max_chars=20)
    assert short["rows"] and all(len(row["text"]) <= 20 for row in short["rows"])
    long_ones = query(min_chars=500)
    assert long_ones["rows"] and all(
        len(row["text"] or "") + sum(len(m["content"]) for m in row["messages"] or []) >= 500
        for row in long_ones["rows"]
    )
    chats = query(config="chat")
    assert chats["matched"] == sum(bool(r["messages"]) for r in train) and all(row["messages"] for row in chats["rows"])
    assert client.get(f"{RELEASE}/1.1.0/records", params={"limit": 201}, headers=AUTH).status_code == 422
    assert client.get(f"{RELEASE}/1.1.0/records", params={"split": "dev"}, headers=AUTH).status_code == 404


def test_rejects_show_reason_and_scores_and_augmented_records_their_parent(client, workspace):
    counts = {e["step"]: e["reasons"] for e in client.get(f"{RELEASE}/1.0.0/rejects", headers=AUTH).json()}
    manifest = json.loads((workspace / "releases" / "parcelly-helpdesk" / "1.0.0" / "manifest.json").read_text())
    assert counts == manifest["accounting"]["rejected"]
    short = client.get(f"{RELEASE}/1.0.0/rejects/clean.length", params={"reason": "too_few_chars"}, headers=AUTH).json()
    assert short["matched"] == counts["clean.length"]["too_few_chars"] == len(short["rows"])
    for reject in short["rows"]:
        assert reject["reason"] == "too_few_chars" and reject["scores"]["chars"] == len(reject["record"]["text"]) < 8
    assert client.get(f"{RELEASE}/1.0.0/rejects/clean.nothing", headers=AUTH).status_code == 404

    train = {r["id"]: r for r in jsonl(workspace, "1.0.0", "train")}
    pairs = every_row(client, f"{RELEASE}/1.0.0/augmented")
    assert len(pairs) == manifest["accounting"]["augmented_records"]
    for pair in pairs:
        parent = train[pair["parent_id"]]
        assert pair["parent"]["id"] == parent["id"] and pair["parent"]["text"] == parent["text"]
        assert pair["parent"]["messages"] == parent["messages"]
        assert pair["augmentation"]["method"] == "typo"
        assert (pair["text"], pair["messages"]) != (parent["text"], parent["messages"])
    eda = next(s for segment in manifest["segments"] for s in segment["steps"] if s["label"] == "augment.eda")
    variants = [v for row in every_row(client, f"{RELEASE}/1.0.0/discarded") for v in row["discarded"]]
    assert len(variants) == sum(eda["discarded"].values()) > 0  # every discarded variant, kept with its record
    assert {v["reason"] for v in variants} == set(eda["discarded"]) and all(v["texts"] for v in variants)


def test_a_record_page_shows_where_it_came_from_and_what_was_derived_from_it(client, workspace):
    train = jsonl(workspace, "1.0.0", "train")
    child = next(r for r in train if r["parent_id"])
    story = client.get(f"{RELEASE}/1.0.0/records/{child['id']}", headers=AUTH).json()
    assert story["record"]["id"] == child["id"] and story["record"]["split"] == "train"
    assert story["record"]["augmentation"] == child["augmentation"] and story["parent"]["id"] == child["parent_id"]
    parent = client.get(f"{RELEASE}/1.0.0/records/{child['parent_id']}", headers=AUTH).json()
    assert [r["id"] for r in parent["derived"]] == [r["id"] for r in train if r["parent_id"] == child["parent_id"]]
    assert parent["record"]["meta"] == next(r["meta"] for r in train if r["id"] == child["parent_id"])
    assert client.get(f"{RELEASE}/1.0.0/records/no-such-id", headers=AUTH).status_code == 404
    page = client.get(f"/ui{RELEASE}/1.0.0/records/{child['parent_id']}", headers=AUTH).text
    assert f'href="/ui/releases/parcelly-helpdesk/1.0.0/records/{child["id"]}"' in page and "meta.length" in page


def every_row(client: TestClient, path: str) -> list[dict]:
    rows, offset = [], 0
    while True:
        page = client.get(path, params={"offset": offset, "limit": 200}, headers=AUTH).json()
        rows += page["rows"]
        offset += 200
        if offset >= page["matched"]:
            return rows


def test_compare_counts_added_records_and_no_split_moves_with_previous(client, workspace):
    diff = client.get(f"{RELEASE}/1.0.0/compare/1.1.0", headers=AUTH).json()
    old = {r["id"] for split in ("train", "validation", "test") for r in jsonl(workspace, "1.0.0", split)}
    new = {r["id"]: r for split in ("train", "validation", "test") for r in jsonl(workspace, "1.1.0", split)}
    assert diff["added"]["count"] == len(new.keys() - old) >= len(NEW_QUESTIONS)
    assert {new[i]["text"] for i in diff["added"]["examples"]} >= {q for q, _, _ in NEW_QUESTIONS}
    assert diff["removed"]["count"] == 0 and diff["changed"]["count"] == 0
    assert diff["split_changed"]["count"] == 0  # split.previous keeps every earlier record where it was
    assert {"key": "split.previous", "old": None, "new": "releases/parcelly-helpdesk/1.0.0"} in diff["config"]
    assert {"key": "release.version", "old": "1.0.0", "new": "1.1.0"} in diff["config"]
    refunds = sum(1 for r in new.values() if r["label"] == "refund_status" and r["split"] == "train")
    assert diff["labels"]["train"]["refund_status"]["new"] == refunds
    reshuffled = client.get(f"{RELEASE}/1.1.0/compare/1.2.0", headers=AUTH).json()
    again = {r["id"]: r for split in ("train", "validation", "test") for r in jsonl(workspace, "1.2.0", split)}
    moved = sorted(i for i in new.keys() & again.keys() if new[i]["split"] != again[i]["split"])
    assert moved and reshuffled["split_changed"]["count"] == len(moved)  # another seed, no previous: records move
    assert [e["id"] for e in reshuffled["split_changed"]["examples"]] == moved[:50]
    content = ("text", "messages", "label")
    changed = sorted(i for i in new.keys() & again.keys() if any(new[i][k] != again[i][k] for k in content))
    assert reshuffled["changed"]["count"] == len(changed) and reshuffled["changed"]["examples"] == changed[:50]
    relabelled = [i for i in changed if new[i]["label"] != again[i]["label"] and not new[i]["parent_id"]]
    assert len(relabelled) == 1  # same text, so the same id, and a new label (the rest: typos of another seed)
    moved_back = client.get(f"{RELEASE}/1.1.0/compare/1.0.0", headers=AUTH).json()
    assert moved_back["removed"]["count"] == diff["added"]["count"]
    assert client.get(f"{RELEASE}/1.1.0/compare/%2E%2E", headers=AUTH).status_code == 404


def test_untrusted_record_text_is_shown_as_text_on_every_page(client):
    sign_in(client)
    pages = [
        f"/ui{RELEASE}/1.1.0/records?q=xss",
        f"/ui{RELEASE}/1.1.0/augmented?offset=0",
        f"/ui{RELEASE}/1.0.0/compare?other=1.1.0",
    ]
    records = client.get(pages[0])
    assert records.status_code == 200 and re.search(r"[12] of \d+ records", records.text)  # it and its typo variant
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in records.text and "<script>window" not in records.text
    assert "script-src 'self'" in records.headers["content-security-policy"]
    for page in pages[1:]:
        response = client.get(page)
        assert response.status_code == 200 and "<script>window" not in response.text


def test_every_page_renders_from_the_package_with_no_outside_asset(client):
    sign_in(client)
    pages = ["/ui/jobs", "/ui/inputs", "/ui/releases", f"/ui{RELEASE}/1.0.0", f"/ui{RELEASE}/1.0.0/rejects", "/ui/runs"]
    for path in [*pages, "/docs"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assets = re.findall(r'(?:src|href)="([^"#?]+)', response.text)
        assert all(a.startswith("/") or a.startswith("?") for a in assets), (path, assets)
        for asset in (a for a in assets if a.startswith(("/static/", "/swagger/"))):
            assert client.get(asset).status_code == 200, asset
    overview = client.get(f"/ui{RELEASE}/1.0.0").text
    assert '<img src="/releases/parcelly-helpdesk/1.0.0/files/plots/labels.png"' in overview
    assert "split.stratified" in overview and "js_divergence" in overview  # the split report's own tables
    assert "SwaggerUIBundle" in client.get("/docs").text and "cdn" not in client.get("/docs").text.lower()


def test_back_translations_show_pivot_models_and_similarity_and_what_the_filter_threw_away(tiny_marian, tmp_path):
    from tiny_marian import backtranslate_params

    sentences = ["I am very happy.", "Where is the station?", "Tom is tired.", "I like dogs.", "It is cold today."]
    rows = [{"text": t, "label": "a" if i % 2 else "b"} for i, t in enumerate(sentences * 6)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({**r, "id": str(i)}) + "\n" for i, r in enumerate(rows)))
    augment = backtranslate_params(tiny_marian, tmp_path / "cache", min_similarity=0.4)
    from conftest import write_config

    config = write_config(
        tmp_path, sources=[{"type": "jsonl", "path": "in.jsonl", "label": "label"}], augment=[augment]
    )
    LocalExecutor(load_config(config), workers=1).build()
    with TestClient(create_app(tmp_path, TOKEN)) as client:
        pairs = client.get("/releases/test/1.0.0/augmented", headers=AUTH).json()["rows"]
        thrown = client.get("/releases/test/1.0.0/discarded", headers=AUTH).json()["rows"]
        page = client.get("/ui/releases/test/1.0.0/augmented", headers=AUTH).text
    assert pairs and thrown  # a 0.4 chrF threshold keeps some back-translations of the tiny model and drops some
    params = pairs[0]["augmentation"]["params"]
    assert params["pivot"] == "de" and params["similarity"] >= 0.4 and params["models"]["forward"]["model"]
    assert "pivot: de" in page and "forward model: " in page and f"similarity: {params['similarity']}" in page
    low = [v for row in thrown for v in row["discarded"] if v["reason"] == "low_similarity"]
    assert low and all(v["similarity"] < 0.4 for v in low)
    assert f"(similarity {low[0]['similarity']})" in page
