"""The one interface of a recommendation algorithm (DESIGN "Algorithms").

Training, serving, the model bundle, erasure and artifacts call only this interface; none
of them branches on an algorithm's name. An implementation is one module of this package
that subclasses :class:`Recommender` and decorates the class with :func:`register`;
registration refuses a class that leaves an abstract method undefined (``without_subject``
above all: no algorithm serves without its erasure patch).

Shared vocabulary:

* ``matrix`` / ``user_items``: a users x items ``scipy.sparse.csr_matrix`` (float32 weights,
  before any scaling), rows = subjects in the artifact's sorted id map, columns = items;
* ``row``: a subject's row in it; ``column``: an item's column;
* scores: a float array with one value per column (higher is better).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

if TYPE_CHECKING:
    from apps.modeling.config import ModelingSettings

#: ``ModelVersion.algorithm`` is a CharField of this length.
NAME_MAX_LENGTH = 8

#: ``(iteration, iterations)`` after each iteration of an iterative fit.
IterationCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Setting:
    """One tenant setting of an algorithm (``Tenant.settings[name]``): its default and its
    range. An unset, mistyped or out-of-range value falls back to the default (a bad setting
    never breaks training)."""

    default: int | float
    cast: type[int] | type[float]
    low: float
    high: float
    help: str = ""


#: Arrays every artifact holds whatever its algorithms: an implementation's own arrays
#: (``to_arrays``) may not use these names.
SHARED_ARRAYS = frozenset({"meta", "item_ids", "user_keys", "ui_indptr", "ui_indices",
                           "ui_data", "support"})


class Recommender(ABC):
    """A fitted (or loaded) model of one algorithm with its parameters.

    ``embeds_items``: the fit yields item factors. Such an algorithm is fitted in every
    training whether or not the tenant lets it serve: its factors back the on-device model
    bundle and the lineage export (what the model infers about a subject), so it must also
    implement :meth:`device_bundle`.

    ``positive_scores_only``: only items with a positive score may be recommended (an
    item-kNN scores nothing outside the neighbourhoods of the items it is given).
    """

    name: ClassVar[str]
    #: The algorithm's name for people (admin choices, the transparency page, the access
    #: export): ``gettext_lazy``, translated in the modeling app's catalogue. Required.
    label: ClassVar[str]
    #: How the algorithm picks a subject's items, in plain words, for the access export
    #: (GDPR Art. 15(1)(h): meaningful information about the logic involved). Required.
    logic: ClassVar[str]
    #: The algorithm's own tenant settings, read into ``ModelingSettings.algorithm``.
    settings: ClassVar[Mapping[str, Setting]] = {}
    embeds_items: ClassVar[bool] = False
    positive_scores_only: ClassVar[bool] = False
    #: The fit reads the interaction weights (not only which cells are stored): the search
    #: then also tries recency weighting of interactions for it (docs/modeling.md).
    uses_weights: ClassVar[bool] = True

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params: dict[str, Any] = dict(params)

    # --- Search --------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def base_params(cls, cfg: ModelingSettings) -> dict[str, Any]:
        """The tenant's own parameters (from ``cfg.algorithm``, its :attr:`settings`, and
        the shared ones such as ``cfg.threads``): always this algorithm's first candidate."""

    @classmethod
    def search_space(cls, cfg: ModelingSettings) -> list[dict[str, Any]]:
        """Every parameter set the per-tenant search may try for this algorithm, most
        promising first; the first is :meth:`base_params` (always tried). The search takes
        every algorithm's first, then every algorithm's second, and so on, while its budget
        (``model_search_seconds``) lasts; each is scored on the validation split."""
        return [cls.base_params(cfg)]

    @classmethod
    def skip_reason(cls, params: Mapping[str, Any], matrix: Any) -> str | None:
        """Why this candidate is not fitted on ``matrix`` (a guard on size or memory), or
        ``None``. Training records the reason on the version's search instead of fitting."""
        return None

    # --- Fitting -------------------------------------------------------------------------

    @abstractmethod
    def fit(self, matrix: Any, on_iteration: IterationCallback | None = None) -> None:
        """Fit on ``matrix`` (the training split, or the full data)."""

    @abstractmethod
    def fit_full(self, matrix: Any) -> Recommender:
        """The same parameters on ``matrix``, a superset of the interactions this one was
        fitted on (validation fit -> hold-out fit -> the served model on the full data).
        May change ``self`` (a warm start) or return a new model."""

    def frozen(self) -> Recommender:
        """A model equal to this one that :meth:`fit_full` on this one cannot change (its
        evaluation runs beside that call)."""
        return self

    @abstractmethod
    def top_items(self, users: np.ndarray, user_items: Any, n: int) -> np.ndarray:
        """For the hold-out evaluation: the best ``n`` columns per row of ``users`` (best
        first; ``user_items`` = those users' training rows, whose items are excluded)."""

    # --- Artifact arrays -----------------------------------------------------------------

    @abstractmethod
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The model as numpy arrays (no objects: loaded with ``allow_pickle=False``)."""

    @classmethod
    @abstractmethod
    def from_arrays(cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                    n_items: int) -> Recommender:
        """The model back from an artifact's arrays (``arrays`` holds every array of the
        file; pick your own)."""

    # --- Serving -------------------------------------------------------------------------

    @abstractmethod
    def score_subject(self, row: int, user_items: Any) -> np.ndarray:
        """Scores for the subject of ``row`` (``user_items``: the artifact's matrix)."""

    @abstractmethod
    def score_session(self, interactions: Any) -> np.ndarray:
        """Scores for an anonymous session: ``interactions`` is a 1 x items CSR row (item
        counts); nothing about the caller is kept."""

    def score_rows(self, interactions: Any) -> np.ndarray:
        """Scores (rows x columns) for several anonymous histories at once (a CSR block,
        one history per row): how a champion is scored on a challenger's hold-out. The
        default asks :meth:`score_session` row by row; override it with a batched form."""
        interactions = interactions.tocsr()
        return np.vstack([np.asarray(self.score_session(interactions[n]), dtype=np.float32)
                          for n in range(interactions.shape[0])]) if interactions.shape[0] \
            else np.zeros((0, interactions.shape[1]), dtype=np.float32)

    @abstractmethod
    def similar(self, column: int) -> np.ndarray:
        """Scores of every item as similar to ``column``."""

    @abstractmethod
    def explain(self, row: int, user_items: Any, columns: np.ndarray, n: int
                ) -> list[list[tuple[int, float]]]:
        """Per recommended column, up to ``n`` of the subject's own past columns that
        contributed most, with their weight (best first)."""

    # --- Erasure -------------------------------------------------------------------------

    @abstractmethod
    def without_subject(self, row: int, remaining: Any, touched: np.ndarray) -> Recommender:
        """This model without the influence of the subject of ``row`` (GDPR Art. 17, the
        erasure patch): nothing of theirs may remain in :meth:`to_arrays`. ``remaining``
        is the users x items matrix without their row; ``touched``: their columns."""

    # --- Bundle --------------------------------------------------------------------------

    def device_bundle(self, active: np.ndarray) -> dict[str, Any]:
        """For ``embeds_items`` algorithms: what on-device scoring needs for the columns
        ``active`` (keys ``factors``, ``regularization``, ``alpha``, ``item_factors``,
        ``gram``; docs/modeling.md)."""
        raise NotImplementedError(f"{self.name} has no item factors")


R = TypeVar("R", bound=type[Recommender])

_registry: dict[str, type[Recommender]] = {}


def register(cls: R) -> R:
    """Class decorator: make ``cls`` an algorithm training may fit and serving may serve.
    Refused (``TypeError``) when it leaves an abstract method undefined, has no name or a
    taken one."""
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if inspect.isabstract(cls) or missing:
        raise TypeError(f"{cls.__name__} cannot be registered: it does not define "
                        f"{', '.join(missing)}")
    name = getattr(cls, "name", "")
    if (not name or len(name) > NAME_MAX_LENGTH or not getattr(cls, "label", "")
            or not getattr(cls, "logic", "")):
        raise TypeError(f"{cls.__name__}: a name of 1-{NAME_MAX_LENGTH} characters, a "
                        "label and a logic text are required")
    if cls.embeds_items and cls.device_bundle is Recommender.device_bundle:
        raise TypeError(f"{cls.__name__} embeds items but does not define device_bundle")
    if name in _registry and _registry[name] is not cls:
        raise TypeError(f"an algorithm named {name!r} is already registered")
    _registry[name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget an algorithm (tests that register a throw-away one)."""
    _registry.pop(name, None)


def registry() -> dict[str, type[Recommender]]:
    return _registry
