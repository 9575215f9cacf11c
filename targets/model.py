"""Model artifact target: a folder with the serialised model and its metadata.json."""
import json
from typing import Any, Callable

from targets import fs
from targets.directory import DirectoryTarget

MODEL_FILE = "model.pkl"
METADATA_FILE = "metadata.json"


class ModelTarget(DirectoryTarget):
    """models/M/: `model.pkl` + `metadata.json`, written whole; how a model becomes bytes is the caller's."""

    def save(self, model: Any, dump: Callable[[Any], bytes], metadata: Callable[[bytes], dict],
             manifest: dict | None = None) -> dict:
        """Serialise with `dump`, build metadata from the exact bytes written, write both (and `manifest`) at once."""
        blob = dump(model)
        meta = metadata(blob)
        with self.temporary_path(manifest) as tmp:
            fs.write_bytes(fs.join(tmp, MODEL_FILE), blob)
            fs.write_bytes(fs.join(tmp, METADATA_FILE), json.dumps(meta, indent=2, default=str).encode())
        return meta

    def model_bytes(self) -> bytes:
        return self.read_file(MODEL_FILE)

    def metadata(self) -> dict:
        return json.loads(self.read_file(METADATA_FILE))
