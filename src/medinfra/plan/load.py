"""The sites of a team plan: one topology per inventory, each a campus of its own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medinfra.problems import Problem, UserInputError
from medinfra.topology import load_topology
from medinfra.topology.model import Topology


def load_sites(files: Sequence[Path]) -> list[Topology]:
    """Every topology of `files` (hospital.yml each); UserInputError with the problems of all of them, and one for
    a site named twice: a group's campuses are different sites, and the same inventory twice counts nobody twice."""
    topologies: list[Topology] = []
    problems: list[Problem] = []
    for path in files:
        try:
            topologies.append(load_topology(path))
        except UserInputError as exc:
            problems += exc.problems
    first: dict[str, str] = {}
    for topology in topologies:
        name = topology.site.name
        if name in first:
            problems.append(Problem(topology.source, ("site", "name"),
                                    f"site {name!r} is also the site of {first[name]}: each inventory of a plan is a "
                                    "campus of its own, with its own site name"))
        first.setdefault(name, topology.source)
    if problems:
        raise UserInputError(problems)
    return topologies
