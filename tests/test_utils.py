"""npnet.utils: seeding and atomic writes."""

import json
import os
import stat

import pytest

from npnet import utils


def test_atomic_write_replaces_the_file_only_when_complete(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with utils.atomic_write(target, "w") as handle:
            handle.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"], "temporary file left behind"

    utils.write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_write_gives_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with utils.atomic_write(tmp_path / "f.bin") as handle:
            handle.write(b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o644


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_set_random_seed_rejects_what_is_not_a_non_negative_integer(seed):
    with pytest.raises(ValueError, match="non-negative integer"):
        utils.set_random_seed(seed)
