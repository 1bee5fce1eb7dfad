"""The model store: the lock of pinned artifacts (`lock.py`), where they live on disk and whether
each is the file the lock pins (`files.py`), fetching them (`fetch.py`, the only code that reaches
the network) and unpacking source archives (`archive.py`).

`fgbg.store` re-exports the lock's and the state's names, so callers need not know which file
holds which; `fetch` and `archive` are imported by name where they are needed (`fgbg models`).
"""

from .lock import (  # noqa: F401
    _entry,
    LOCK_VERSION,
    HASH_CACHE_NAME,
    RECORDED_HASHES_NAME,
    KINDS,
    BACKENDS,
    ROLES,
    VERIFIABLE_FIELDS,
    LockEntry,
    lock_path,
    load_lock,
)
from .files import (  # noqa: F401
    State,
    REVISION_NAME,
    MANIFEST_NAME,
    CHUNK,
    UnverifiedArtifactWarning,
    ArtifactCheck,
    models_dir,
    sha256_file,
    cached_sha256,
    recorded_hashes_file,
    recorded_sha256,
    record_sha256,
    artifact_path,
    check,
    state,
    require,
    human_size,
    ListRow,
    list_table,
)
