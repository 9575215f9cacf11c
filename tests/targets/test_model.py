"""Model artifact target: model file and metadata written together from the same bytes, or not at all."""
import pytest

from targets import fs
from targets.model import METADATA_FILE, MODEL_FILE, ModelTarget


def test_save_writes_the_exact_bytes_and_metadata_built_from_them(tmp_path):
    target = ModelTarget(str(tmp_path / "models" / "2026-03-02"))
    assert not target.exists()
    meta = target.save({"w": [1, 2]}, lambda m: repr(m).encode(), lambda blob: {"size": len(blob)})
    assert target.exists()
    assert target.model_bytes() == b"{'w': [1, 2]}"
    assert target.metadata() == meta == {"size": 13}
    assert sorted(fs.list_dir(target.uri)) == sorted([MODEL_FILE, METADATA_FILE, "_SUCCESS"])


def test_a_failed_save_leaves_nothing_that_looks_complete(tmp_path):
    target = ModelTarget(str(tmp_path / "models" / "2026-03-02"))

    def broken_metadata(blob: bytes) -> dict:
        raise RuntimeError("metadata failed")

    with pytest.raises(RuntimeError):
        target.save(object(), lambda m: b"bytes", broken_metadata)
    assert not target.exists()
    assert not fs.exists(target.uri)
    assert fs.list_dir(str(tmp_path / "models")) == [], "a crashed save left a temporary folder behind"
