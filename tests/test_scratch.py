"""Scratch files: what a killed process leaves behind is removed, nothing else."""

import os
import time

from chalicelib import scratch


def leave(directory, name: str, age_seconds: float) -> str:
    path = directory / name
    path.write_bytes(b"SQLite format 3\x00")
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return str(path)


def test_files_untouched_for_a_minute_are_removed_others_kept(tmp_path):
    abandoned = leave(tmp_path, "linklog-state-old.sqlite", 120)
    leave(tmp_path, "linklog-state-downloading.sqlite", 5)
    leave(tmp_path, "someone-elses.sqlite", 3600)
    leave(tmp_path, "linklog-state-notes.txt", 3600)

    assert scratch.remove_abandoned(str(tmp_path)) == [abandoned]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "linklog-state-downloading.sqlite", "linklog-state-notes.txt", "someone-elses.sqlite"]


def test_the_age_is_judged_on_the_clock_handed_in(tmp_path):
    leave(tmp_path, "linklog-state-a.sqlite", 0)

    assert scratch.remove_abandoned(str(tmp_path), now=lambda: time.time() + 30) == []
    assert len(scratch.remove_abandoned(str(tmp_path), now=lambda: time.time() + 90)) == 1


def test_the_first_scratch_file_in_a_directory_clears_it_later_ones_do_not(tmp_path):
    leave(tmp_path, "linklog-state-killed.sqlite", 120)

    file, path = scratch.new_scratch_file(str(tmp_path))
    file.close()
    leave(tmp_path, "linklog-state-killed-later.sqlite", 120)
    second, second_path = scratch.new_scratch_file(str(tmp_path))
    second.close()

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [os.path.basename(path), os.path.basename(second_path), "linklog-state-killed-later.sqlite"])
    assert os.path.basename(path).startswith("linklog-state-") and path.endswith(".sqlite")


def test_remove_is_harmless_twice(tmp_path):
    file, path = scratch.new_scratch_file(str(tmp_path))
    file.close()

    scratch.remove(path)
    scratch.remove(path)

    assert not os.path.exists(path)
