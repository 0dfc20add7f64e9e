"""publish_drill: the document's shape, the evidence file written the safe way, its signature, its history record."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from medinfra.drill import publish_drill
from medinfra.history import open_history
from medinfra.problems import UserInputError
from medinfra.signing import generate_keypair, verify_directory


def document(**changes: Any) -> dict[str, Any]:
    base = {"format": "medinfra-drill/1", "kind": "plan", "site": "dbops", "started": "2026-12-06T18:00:00Z",
            "finished": "2026-12-06T18:02:30.250000+00:00", "passed": True,
            "result": {"name": "backup-server-lost", "steps": [{"kind": "break", "seconds": 1.5}]}}
    return {**base, **changes}


def test_publishes_evidence_signed_and_recorded(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "keys" / "drill")
    history = str(tmp_path / "history.sqlite")
    published = publish_drill(document(), tmp_path / "evidence", history, private)
    assert published.directory.parent == tmp_path / "evidence"
    assert published.directory.name.startswith("plan-dbops-20261206T180000Z-")
    written = json.loads(published.file.read_text(encoding="utf-8"))
    assert written == {**document(), "drill_id": published.drill_id}
    assert stat.S_IMODE(os.stat(published.file).st_mode) == 0o640
    assert published.manifest is not None and verify_directory(published.directory, public).ok
    assert published.record is not None and published.history_error is None
    assert (published.record.drill_uuid, published.record.seconds) == (published.drill_id, 150)
    with open_history(history, read_only=True) as store:
        assert store.drills() == [published.record]
        assert store.drill_document(published.record.id) == written


def test_unsigned_without_history_and_evidence_never_overwritten(tmp_path: Path) -> None:
    first = publish_drill(document(drill_id="d-1"), tmp_path, None, None)
    assert (first.manifest, first.record, first.drill_id) == (None, None, "d-1")
    second = publish_drill(document(drill_id="d-2"), tmp_path, None, None)
    assert second.directory != first.directory
    with pytest.raises(UserInputError, match="already exists; refusing to overwrite"):
        publish_drill(document(drill_id="d-1"), tmp_path, None, None)


def test_a_prepared_symlink_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "evidence").symlink_to(target)
    with pytest.raises(UserInputError, match="is a symlink"):
        publish_drill(document(), tmp_path / "evidence", None, None)
    real = tmp_path / "real"
    real.mkdir()
    (real / "plan-dbops-20261206T180000Z-d-1").symlink_to(target)
    with pytest.raises(UserInputError, match="is a symlink"):
        publish_drill(document(drill_id="d-1"), real, None, None)
    (real / "plan-dbops-20261206T180000Z-d-2").mkdir()
    (real / "plan-dbops-20261206T180000Z-d-2" / "drill.json").symlink_to(target / "victim")
    with pytest.raises(UserInputError, match="already exists"):
        publish_drill(document(drill_id="d-2"), real, None, None)
    assert list(target.iterdir()) == []


def test_a_history_that_cannot_take_it_keeps_the_evidence(tmp_path: Path) -> None:
    (tmp_path / "history.sqlite").mkdir()
    published = publish_drill(document(), tmp_path / "evidence", str(tmp_path / "history.sqlite"), None)
    assert published.file.is_file() and published.record is None
    assert published.history_error is not None and "cannot open history" in published.history_error


@pytest.mark.parametrize(
    ("changes", "where", "message"),
    [
        ({"format": "medinfra-drill/2"}, "format", "expected 'medinfra-drill/1'"),
        ({"kind": "fire"}, "kind", "expected one of failover, plan"),
        ({"site": ""}, "site", "must be a non-empty text"),
        ({"started": "2026-12-06T18:00:00"}, "started", "no UTC offset"),
        ({"finished": "yesterday"}, "finished", "is not an ISO-8601 time"),
        ({"finished": "2026-12-06T17:59:59Z"}, "finished", "is before started"),
        ({"passed": "yes"}, "passed", "must be true or false"),
        ({"result": []}, "result", "must be an object"),
        ({"drill_id": 7}, "drill_id", "must be a non-empty text"),
        ({"result": {"seconds": float("nan")}}, "(top level)", "is not JSON"),
    ],
)
def test_bad_documents_are_refused_located_and_nothing_is_written(
    tmp_path: Path, changes: dict[str, Any], where: str, message: str
) -> None:
    with pytest.raises(UserInputError) as caught:
        publish_drill(document(**changes), tmp_path / "evidence", str(tmp_path / "h.sqlite"), None)
    assert str(caught.value.problems[0]).startswith(f"drill document: {where}: ")
    assert message in str(caught.value.problems[0])
    assert not (tmp_path / "evidence").exists() and not (tmp_path / "h.sqlite").exists()
