"""Deterministic identities of the multivariate family: content hashes, instance and model ids.

Standard library only (the function app imports it when it is indexed). The same input always
gives the same ids, so a duplicate trigger finds the instance it would start already there.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Protocol

#: Dataset extensions the training container trains on (``.json`` sidecars are not datasets).
DATASET_SUFFIXES = (".zip", ".csv")

_TRAINING_PREFIX = "mvtrain-"
_DETECTION_PREFIX = "mvdetect-"
_MODEL_NAMESPACE = uuid.UUID("6f2b1c52-3f7e-4d7a-9a57-0c1f2f6f8e11")
_CHUNK = 1024 * 1024


def content_hash(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


class Readable(Protocol):
    """Anything with ``read(size) -> bytes`` (a file, ``func.InputStream``)."""

    def read(self, size: int = -1, /) -> bytes: ...


def stream_hash(stream: Readable) -> str:
    """Return the SHA-256 of a binary stream (read in 1 MiB chunks) as 64 hex digits."""
    digest = hashlib.sha256()
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        digest.update(chunk)
    return digest.hexdigest()


def is_dataset_name(name: str) -> bool:
    """Whether a blob in the training container is a dataset to train on (not a sidecar)."""
    return name.lower().endswith(DATASET_SUFFIXES)


def training_instance_id(
    container: str, name: str, sha256: str, spec: Mapping[str, object] | None = None
) -> str:
    """The orchestration instance id of one training: the same input always gives the same id.

    Args:
        container: Container of the dataset blob.
        name: Blob name inside the container.
        sha256: SHA-256 of the blob's content (:func:`content_hash`).
        spec: A training spec given with the request (HTTP starter); ``None`` when the spec is
            read from the blob's sidecar or metadata.

    Returns:
        ``mvtrain-`` followed by 32 hex digits.
    """
    canonical = "" if spec is None else json.dumps(spec, sort_keys=True, separators=(",", ":"))
    key = f"{container}/{name}\n{sha256.lower()}\n{canonical}"
    return _TRAINING_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:32]


def call_training_instance_id(
    container: str, name: str, sha256: str, spec: Mapping[str, object], call: str
) -> str:
    """The instance id of one API training call: a new training (and model) per call.

    The service created a new model for every ``POST multivariate/models``, and the Learn
    notebook counts models before and after training. A retried call carries the same
    ``x-ms-client-request-id`` (every SDK keeps it across its retries), so it maps to the same
    instance and creates nothing twice; the blob-triggered training keeps
    :func:`training_instance_id` (one model per content).

    Args:
        container: Container of the dataset blob.
        name: Blob name inside the container.
        sha256: SHA-256 of the blob's content.
        spec: The canonical training spec of the request.
        call: The client request id, or a fresh random id when the caller sent none.
    """
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    key = f"call\n{call}\n{container}/{name}\n{sha256.lower()}\n{canonical}"
    return _TRAINING_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:32]


def detection_instance_id(result_id: str) -> str:
    """The orchestration instance id of the batch detection with this ``resultId``."""
    return _DETECTION_PREFIX + result_id


def model_id_for(instance_id: str) -> str:
    """The model id (a v1.1 GUID) of the training run with this instance id."""
    return str(uuid.uuid5(_MODEL_NAMESPACE, instance_id))
