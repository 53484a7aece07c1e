"""bench/walk_tables.py's per-text goal summary (issue 16, goal 2): what it sums and what counts as exact."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("walk_tables", Path(__file__).parents[1] / "bench" / "walk_tables.py")
walk_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(walk_tables)


def row(sample: int, length: int, accuracy: float, evals: int, seconds: float) -> dict:
    return {"sample": sample, "length": length, "accuracy": accuracy, "evals": evals, "fit_seconds": seconds}


def test_goal_sums_the_walk_up_to_the_goal_and_needs_every_token_right():
    warm = walk_tables.walk(
        [
            row(0, 4, 1.0, 10, 60),
            row(0, 8, 1.0, 20, 120),
            row(0, 16, 0.5, 99, 600),  # past the goal: not counted
            row(1, 4, 1.0, 5, 30),
            row(1, 8, 0.995, 40, 90),  # counts as reconstructed for capacity (>= 0.99), not as exact
            row(2, 4, 1.0, 7, 6),  # its walk has not reached 8 yet: neither exact nor failed
        ]
    )
    lines = walk_tables.goal("wiki", warm, 8).splitlines()
    assert lines[4].split(" | ") == ["| 0", "1.000", "yes", "8", "30", "3.0 |"]
    assert lines[5].split(" | ") == ["| 1", "0.995", "no", "4", "45", "2.0 |"]
    assert lines[6].split(" | ") == ["| 2", "-", "-", "4", "7", "0.1 |"]


def test_norms_lists_each_texts_e_norm_and_accuracy_per_length_with_gaps_marked():
    warm = walk_tables.walk([row(0, 4, 1.0, 10, 60), row(1, 4, 1.0, 5, 30), row(0, 8, 0.5, 20, 120)])
    lines = walk_tables.norms("wiki", warm, lambda r: 100.0 * r["length"] + r["sample"]).splitlines()
    assert lines[2] == "| N | text 0 | text 1 |"
    assert lines[4] == "| 4 | 400 (1.000) | 401 (1.000) |"
    assert lines[5] == "| 8 | 800 (0.500) | - |"
