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


def test_a_save_failing_mid_write_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    """model.pkl is written, then the metadata cannot be: the half-written folder is removed, never flagged."""
    target = ModelTarget(str(tmp_path / "models" / "2026-03-02"))
    written = []
    real_write = fs.write_bytes

    def record(uri, data):
        real_write(uri, data)
        written.append(uri)

    # A tuple key cannot be JSON: json.dumps fails after model.pkl is already in the temporary folder.
    monkeypatch.setattr(fs, "write_bytes", record)
    with pytest.raises(TypeError, match="keys must be"):
        target.save(object(), lambda m: b"bytes", lambda blob: {("not", "json"): 1})
    assert len(written) == 1 and written[0].endswith(MODEL_FILE) and "/.2026-03-02.inprogress-" in written[0], \
        "the error must come after a file was written into the temporary folder"
    assert not target.exists()
    assert not fs.exists(target.uri)
    assert not fs.exists(fs.parent(written[0]) + "/" + MODEL_FILE)
    assert fs.list_dir(str(tmp_path / "models")) == [], "a crashed save left a temporary folder behind"
