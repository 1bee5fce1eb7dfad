"""The repository stands alone: its tests read only what the clone carries."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_opening_the_folder_beside_the_repository_fails_by_name():
    # the guard in conftest fires before the file system is asked, so this holds with or
    # without a ../shared folder beside the clone
    with pytest.raises(PermissionError, match="must not read ../shared"):
        (REPO.parent / "shared" / "docs" / "PAPER.md").read_text()


def test_the_fixtures_are_in_the_repository():
    fixtures = REPO / "tests" / "fixtures" / "animateanyone"
    for name in ("tiny_config.json", "tiny_weights.safetensors", "tiny_io.safetensors",
                 "tiny_io_f64.safetensors", "sd15_full_shapes.json", "pose_draw_inputs.json"):
        assert (fixtures / name).is_file(), name
    assert (REPO / "docs" / "MODELS.md").is_file()
