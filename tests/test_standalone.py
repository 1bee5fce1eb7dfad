"""The repository stands alone: its tests read only what the clone carries."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_opening_a_file_beside_the_repository_fails_by_name():
    # the guard in conftest fires before the file system is asked, so this holds whatever
    # folders sit beside the clone
    from tests.conftest import _GUARDED

    if not _GUARDED:
        pytest.skip("this clone sits in /, the home folder or the temporary folder: no project folders "
                    "beside it to guard")
    with pytest.raises(PermissionError, match="must not read files beside the clone"):
        (REPO.parent / "team-folder" / "docs" / "PAPER.md").read_text()
    assert (REPO / "README.md").read_text()  # the clone's own files open


def test_the_fixtures_are_in_the_repository():
    fixtures = REPO / "tests" / "fixtures" / "animateanyone"
    for name in ("tiny_config.json", "tiny_weights.safetensors", "tiny_io.safetensors",
                 "tiny_io_f64.safetensors", "sd15_full_shapes.json", "pose_draw_inputs.json"):
        assert (fixtures / name).is_file(), name
    assert (REPO / "docs" / "MODELS.md").is_file()
