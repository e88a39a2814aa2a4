"""`outputs.prepare`: an attempt's output directories are created empty, whatever a lost earlier start of the same
attempt number left where they go (a directory with files, a file, a symbolic link)."""

from __future__ import annotations

from pathlib import Path

from odin.controller.executors.outputs import AttemptDirs, prepare


def _dirs(base: Path) -> AttemptDirs:
    return AttemptDirs(output_path=str(base / "1" / "artifacts"), results_path=str(base / "1" / "results"))


def test_first_start_creates_both_directories_and_their_parents(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path / "outputs" / "run" / "task")
    prepare(dirs)
    assert Path(dirs.output_path).is_dir() and not any(Path(dirs.output_path).iterdir())
    assert Path(dirs.results_path).is_dir() and not any(Path(dirs.results_path).iterdir())


def test_a_restart_finds_them_empty_whatever_was_there(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    artifacts, results = Path(dirs.output_path), Path(dirs.results_path)
    (artifacts / "model").mkdir(parents=True)
    (artifacts / "model" / "weights.bin").write_bytes(b"old")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not Odin's")
    results.symlink_to(outside, target_is_directory=True)  # a link: removed, never followed
    prepare(dirs)
    assert artifacts.is_dir() and not any(artifacts.iterdir())
    assert results.is_dir() and not results.is_symlink() and not any(results.iterdir())
    assert (outside / "keep.txt").read_text() == "not Odin's"


def test_a_file_where_a_directory_goes_is_replaced(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    Path(dirs.output_path).parent.mkdir(parents=True)
    Path(dirs.output_path).write_text("stray")
    prepare(dirs)
    assert Path(dirs.output_path).is_dir()
