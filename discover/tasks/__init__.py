"""Proxy training tasks whose parameters carry a population axis.

Every task ships with the package and builds its data locally and
deterministically (nothing is downloaded). Use a registered name or an import
path of your own :class:`Task` subclass::

    from discover.tasks import get_task, train_population
    task = get_task("mlp")                  # or get_task("mypkg.mod:MyTask")
    def sgd(params, grads, step):
        torch._foreach_add_(params, grads, alpha=-0.5)
    result = train_population(task, seeds=range(8), update=sgd)
    result.val_loss                         # (8,), inf where a member failed
"""

from __future__ import annotations

import importlib

from .base import SyntheticTask, Task, population_cross_entropy
from .bow import BagOfWords, BagOfWordsC
from .charlm import CharLM, CharLMLarge
from .convnet import ConvNet, ConvNetLarge
from .logistic import Logistic
from .mlp import MLP, MLPLarge
from .quadratic import Quadratic
from .resmlp import ResMLP, ResMLPLarge
from .rnn import RNNLM, RNNLMC
from .train import TrainResult, train_population
from .transformer import TransformerLM, TransformerLMB

__all__ = ["VALIDATE_TASKS", "Task", "SyntheticTask", "TASKS", "DEFAULT_TASKS", "META_TASKS", "get_task",
           "train_population", "TrainResult", "population_cross_entropy",
           "Quadratic", "Logistic", "MLP", "MLPLarge", "ConvNet", "ConvNetLarge", "CharLM", "CharLMLarge",
           "TransformerLM", "TransformerLMB", "RNNLM", "RNNLMC", "ResMLP", "ResMLPLarge",
           "BagOfWords", "BagOfWordsC"]

#: Registered task classes by name; each builds with no arguments.
TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (
    Quadratic, Logistic, MLP, ConvNet, CharLM, MLPLarge, ConvNetLarge, CharLMLarge,
    TransformerLM, TransformerLMB, RNNLM, RNNLMC, ResMLP, ResMLPLarge, BagOfWords, BagOfWordsC)}

# Three disjoint sets, so that a discovery is always judged on tasks it was not selected on.
# Together they carry what makes optimizers differ in real training: embeddings, attention,
# layer norm, recurrent weights, sparse inputs, heavy-tailed data, convolutions; each trains
# with warmup + cosine decay. Text A, B and C are disjoint stdlib sources.

#: Tasks search scores candidates on by default: an MLP, a convnet, two character LMs (an MLP
#: LM and a causal transformer, text A) and a sparse bag-of-n-grams classifier (text A).
DEFAULT_TASKS: list[str] = ["mlp", "convnet", "charlm", "transformer", "bow"]

#: Meta-validation tasks that re-score the best candidates (the funnel); search never optimises
#: them directly. Each differs from every search task in architecture or data: a GRU LM
#: (recurrent weights), a LayerNorm residual MLP on heavy-tailed regression, and an MLP on
#: another mixture with more classes.
META_TASKS: list[str] = ["rnn", "resmlp", "mlp_large"]

#: Tasks `discover validate` reports on by default: a third set, neither searched nor
#: meta-validated on, with its own data (texts B and C, other seeds): a transformer LM, a GRU LM,
#: a sparse classifier, a residual regression net, an image convnet and a logistic regression.
VALIDATE_TASKS: list[str] = ["transformer_b", "rnn_c", "bow_c", "resmlp_large", "convnet_large", "logistic"]


def get_task(spec: str | Task) -> Task:
    """A new task from a registered name (see ``TASKS``) or an import path ``"pkg.mod:Class"``.

    The import path names a :class:`Task` subclass that can be built with no
    arguments; its module is imported with :mod:`importlib` (nothing is ever
    evaluated). A :class:`Task` instance is returned unchanged.

    Example::

        get_task("charlm")                 # CharLM(name='charlm', steps=150)
        get_task("mypkg.tasks:MyTask")     # your own Task subclass
    """
    if isinstance(spec, Task):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"task spec must be a string or a Task, not {type(spec).__name__}")
    if spec in TASKS:
        return TASKS[spec]()
    help_text = (f"known tasks: {', '.join(TASKS)}; or give an import path 'package.module:ClassName' "
                 "naming a Task subclass that can be built with no arguments")
    if ":" not in spec:
        raise ValueError(f"unknown task {spec!r}; {help_text}")
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise ValueError(f"bad task import path {spec!r}; {help_text}")
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {mod_name!r} for task {spec!r}: {e}; {help_text}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {mod_name!r} has no attribute {attr!r} (task {spec!r}); {help_text}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise ValueError(f"{spec!r} is not a Task subclass; {help_text}")
    try:
        return obj()
    except TypeError as exc:  # it needs arguments, or is abstract
        raise ValueError(f"task {spec!r} cannot be built with no arguments ({exc}); {help_text}") from None
