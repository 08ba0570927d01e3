"""Evolutionary search for optimizer programs (regularized evolution with DEAP).

The Python API of `discover search`:

    >>> from discover.search import SearchConfig, run
    >>> import tempfile, discover
    >>> result = run(SearchConfig(init=["sgd"], tasks=["quadratic"], meta_tasks=[], budget=8,
    ...                           progress=False, out=tempfile.mkdtemp()))
    >>> result.evaluations
    8
    >>> text = discover.unparse(result.best.program)   # runs as is: discover.parse(text)

Modules: `config` (SearchConfig), `program` (data flow, pruning, warm starts,
JSON IR), `mutate` (mutations and valid children), `individual` (DEAP
individuals), `rundir` (the run directory and its lock), `state` (`SearchState`: the
checkpoint as data, with its JSON form), `evolution` (the algorithm over a `SearchState`: warm
start, batches, cache, restarts, funnel), `report` (hall of fame, best.opt, summary, verdict),
`runner` (`run`: checks, the resume policy, the final stage).
"""
from .config import SearchConfig
from .evolution import Search, SearchResult
from .individual import FitnessMin, Individual
from .mutate import Mutator, NoChild
from .program import depends_on_g, prepare_init, program_from_json, program_to_json, prune
from .runner import run
from .state import SearchState

__all__ = ["FitnessMin", "Individual", "Mutator", "NoChild", "Search", "SearchConfig", "SearchResult",
           "SearchState", "depends_on_g", "prepare_init", "program_from_json", "program_to_json", "prune", "run"]
