"""The papers' experiments, one module each, all run by experiments.runner.run_experiment.

A module defines its config dataclass, plan/run/render functions and an EXPERIMENT (runner.Experiment);
EXPERIMENTS is the registry the CLI reads. A new experiment is one file plus one line here.

    from prototok.experiments import EXPERIMENTS, Setup, run_experiment
    from prototok.experiments.capacity import CapacityConfig
    from prototok.methods import OnePass
    from prototok.recipes import get_recipe

    run_experiment(EXPERIMENTS["capacity"], CapacityConfig(lengths=(4, 8)), Setup(data=("wiki",)),
                   OnePass(get_recipe("fast-e50")))
"""

from __future__ import annotations

from . import capacity, geometry, layouts, sharing
from .runner import Experiment, Setup, run_experiment

EXPERIMENTS: dict[str, Experiment] = {m.EXPERIMENT.name: m.EXPERIMENT for m in (capacity, layouts, sharing, geometry)}

__all__ = ["EXPERIMENTS", "Experiment", "Setup", "run_experiment"]
