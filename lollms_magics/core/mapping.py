"""One prompt over many items: :meth:`Session.map <lollms_magics.core.session.Session.map>` and ``--each``.

::

    s = Session("openai", host="http://localhost:8080")
    labels = s.map("Is this review positive or negative? One word.\\n{item.review}", df, concurrency=8)
    df["label"] = labels.output()["result"]

The template is filled for each item by the prompts' own filler
(:mod:`~lollms_magics.core.interpolate`): ``{item}``, ``{item.field}``,
``{item["col"]}`` (see :mod:`~lollms_magics.core.map_items` for what an item
is), and any other ``{name}`` of ``namespace``. Every prompt is filled and
checked for API keys before the first request is sent, and a reference to
``item`` that some item cannot fill is refused then too, naming the item.

Each item is one request, alone: no conversation history is sent or kept. It
goes through :meth:`Session.ask` and the binding's transport, so record and
replay work unchanged. ``concurrency`` requests run at once per host, spread
over ``hosts`` by the summaries' scheduler
(:func:`~lollms_magics.summaries.hosts.run_each`): a host that fails moves
its items to the others. An item that fails is kept with its error and the
others go on, unless ``fail_fast``.

Finished answers are kept in the kernel (bounded, apart from the summaries'
store) under a hash of the backend, model, filled prompt, system prompt,
options and schema, so running the same map again sends only the items that
are missing or failed. An interrupt (Ctrl-C, the kernel's Stop) cancels the
requests in flight and returns within a second with what was done.
"""

from __future__ import annotations

import reprlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BadRequestError, BindingError, InvalidOptionError
from ..options import validate_options
from ..summaries.calls import Cancelled
from ..summaries.hosts import Host, run_each
from ..summaries.resume import CallCache, Memory, call_key
from .map_items import Items, aligned, filled_prompts, items_of, pandas_kind

if TYPE_CHECKING:
    from .session import Session

__all__ = ["MapProgress", "MapResult", "map_memory", "run_map"]

_MEMORY = Memory(limit=100_000)  # about 50 MB of short answers at most
_MOST = 512  # requests at once per host (each is a thread)
_EMIT_EVERY = 0.2  # seconds between two progress events while items finish
_SHORT = reprlib.Repr()  # a MapResult shows the first results of a long list, not all of them
_SHORT.maxlist = _SHORT.maxdict = 12
_SHORT.maxstring = _SHORT.maxother = 120


def map_memory() -> Memory:
    """The kernel-wide store of mapped answers (tests clear it)."""
    return _MEMORY


def _job_errors() -> tuple[type[BindingError], ...]:
    """Errors that blame one item's request, not the host: given up at once, not retried elsewhere."""
    errors: list[type[BindingError]] = [BadRequestError]
    from .. import errors as module

    structured = getattr(module, "StructuredOutputError", None)
    if isinstance(structured, type) and issubclass(structured, BindingError):
        errors.append(structured)
    return tuple(errors)


@dataclass(frozen=True)
class MapProgress:
    """Where a mapped prompt stands; ``phase`` is ``"start"``, ``"item"``, ``"done"`` or ``"stopped"``.

    ``rate`` counts the items answered per second in this run (not those
    reused from an earlier one); ``seconds_left`` is None until one is answered.
    """

    phase: str
    done: int
    failed: int
    total: int
    cached: int
    rate: float | None
    seconds_left: float | None
    elapsed: float

    def line(self) -> str:
        """One line: ``37/200 done  1 failed  12.4 items/s  0:13 left``."""
        parts = [f"{self.done}/{self.total} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.cached:
            parts.append(f"{self.cached} from an earlier run")
        if self.rate is not None:
            parts.append(f"{self.rate:.1f} items/s")
        if self.phase in ("done", "stopped"):
            parts.append(f"{'stopped after' if self.phase == 'stopped' else 'in'} {self.elapsed:.1f} s")
        elif self.seconds_left is not None:
            minutes, seconds = divmod(int(self.seconds_left + 0.5), 60)
            parts.append(f"{minutes}:{seconds:02d} left")
        return "  ".join(parts)


@dataclass(repr=False)
class MapResult:
    """The answers of a mapped prompt, in the items' order.

    Attributes
    ----------
    results:
        One per item, in order: the answer's text (stripped), or with a schema
        its data; None for an item that failed or was not done.
    labels:
        Each item's label: its position, its dict key, its pandas index label, its file path.
    error_list:
        One per item: its error message, or None.
    done, cached, calls:
        Items answered (in this run or reused from an earlier one), items
        reused, and requests sent.
    wall_time:
        Seconds the whole map took.
    stopped:
        True when an interrupt (or a Stop) ended it early.
    error:
        Why the run ended early (an interrupt, every host failing, the first
        failure with ``fail_fast``), else None.
    fields:
        The schema's top-level fields (the output's columns), if any.
    notes:
        Remarks on the filling (a value cut to the fill limit...).
    """

    results: list[Any]
    labels: list[Any]
    error_list: list[str | None]
    items: Items = field(repr=False)
    fields: list[str] = field(default_factory=list)
    done: int = 0
    cached: int = 0
    calls: int = 0
    wall_time: float = 0.0
    stopped: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> dict[Any, str]:
        """The failed items' errors, by label (position, key, index label or path)."""
        return {self.labels[i]: e for i, e in enumerate(self.error_list) if e is not None}

    @property
    def failed(self) -> int:
        """How many items failed."""
        return sum(e is not None for e in self.error_list)

    @property
    def complete(self) -> bool:
        """True when every item has its answer."""
        return self.done == len(self.results)

    def output(self) -> Any:
        """The results in the items' shape: a list, a dict, or pandas aligned with the items' index.

        A DataFrame gives a DataFrame with a ``result`` column (with a schema,
        one column per field) and an ``error`` column; a Series gives a Series
        (a DataFrame with a schema); a dict or a glob of files, a dict.
        """
        return aligned(self.items, self.results, self.error_list, self.fields)

    def summary(self) -> str:
        """One line: how many were done, failed, reused, and how fast."""
        total = len(self.results)
        parts = [f"{self.done} of {total} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.cached:
            parts.append(f"{self.cached} from an earlier run")
        answered = self.done - self.cached
        rate = f" ({answered / self.wall_time:.1f} items/s)" if answered and self.wall_time > 0 else ""
        parts.append(f"{self.calls} requests in {self.wall_time:.1f} s{rate}")
        return ", ".join(parts)

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        head = f"MapResult: {self.done} of {len(self)} done"
        if self.failed:
            head += f", {self.failed} failed"
        shown = self.output()
        return f"{head}\n{shown!r}" if pandas_kind(shown) else f"{head}\n{_SHORT.repr(shown)}"

    def _repr_html_(self) -> str | None:
        shown = self.output()
        html = getattr(shown, "_repr_html_", None)
        return html() if callable(html) else None


class _Tracker:
    """Counts finished items and sends throttled :class:`MapProgress` events (thread-safe)."""

    def __init__(self, callback: Callable[[MapProgress], None] | None, total: int, cached: int) -> None:
        self.callback = callback
        self.total, self.cached = total, cached
        self.done, self.failed = cached, 0
        self.started = time.perf_counter()
        self._shown = 0.0
        self._lock = threading.Lock()

    def step(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.done += 1
            else:
                self.failed += 1
            now = time.perf_counter()
            if now - self._shown < _EMIT_EVERY and self.done + self.failed < self.total:
                return
            self._shown = now
        self.emit("item")

    def emit(self, phase: str) -> None:
        if self.callback is None:
            return
        with self._lock:
            elapsed = time.perf_counter() - self.started
            answered = self.done - self.cached + self.failed
            rate = answered / elapsed if answered and elapsed > 0 else None
            left = (self.total - self.done - self.failed) / rate if rate else None
            event = MapProgress(phase, self.done, self.failed, self.total, self.cached, rate, left, elapsed)
        self.callback(event)


class _Place:
    """A host's binding, with the URL it was made for (the session finds it again by that URL)."""

    def __init__(self, binding: Any, url: str | None) -> None:
        self.binding = binding
        self.url = url
        self.name = binding.name
        self.host = getattr(binding, "host", None) or binding.name


class _Sender:
    """Sends the prepared prompts: one :meth:`Session.ask` per item, cancelled together on a stop."""

    def __init__(self, session: Session, prompts: list[str], systems: list[str] | None,
                 choice: tuple[str | None, str | None], schema: Any, options: dict[str, Any]) -> None:
        self.session, self.prompts, self.systems = session, prompts, systems
        self.binding, self.model = choice
        self.schema, self.options = schema, options
        self.cancel = threading.Event()
        self.calls = 0
        self._active: set[Any] = set()
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Cancel every request in flight (their connections are cut) and send no other."""
        self.cancel.set()
        with self._lock:
            active = list(self._active)
        for response in active:
            response.cancel()

    def ask(self, place: _Place, position: int) -> tuple[Any, str]:
        """The item's answer: (its value, its raw text); raises the binding's error, or Cancelled."""
        if self.cancel.is_set():
            raise Cancelled()
        extra = {} if self.schema is None else {"schema": self.schema}
        response = self.session.ask(
            self.prompts[position], binding=self.binding, model=self.model, host=place.url,
            system=self.systems[position] if self.systems else None, stream=False, history=False,
            **extra, **self.options,
        )
        with self._lock:
            self.calls += 1
            self._active.add(response)
        if self.cancel.is_set():  # stopped between the two checks: do not wait for this answer
            response.cancel()
        try:
            text = response.text
            value = text.strip() if self.schema is None else getattr(response, "data", None)
        finally:
            with self._lock:
                self._active.discard(response)
        if response.interrupted or self.cancel.is_set():
            raise Cancelled()
        return value, text


def run_map(
    session: Session,
    template: str,
    items: Any,
    *,
    binding: str | None = None,
    model: str | None = None,
    host: str | None = None,
    hosts: Sequence[str] | None = None,
    system: str | None = None,
    schema: Any = None,
    concurrency: int = 1,
    fail_fast: bool = False,
    resume: bool | str = True,
    progress: Callable[[MapProgress], None] | None = None,
    namespace: Mapping[str, Any] | None = None,
    **options: Any,
) -> MapResult:
    """What :meth:`Session.map` does; see there."""
    started = time.perf_counter()
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= _MOST:
        raise InvalidOptionError(
            f"concurrency must be a whole number from 1 to {_MOST}, not {concurrency!r}"
        )
    checked = {**session.options, **validate_options(options)}
    given = items_of(items)
    fields: list[str] = []
    schema_json: Any = None
    shape: Any = None
    if schema is not None:  # a bad schema fails here, before anything is read or sent
        from .structured import as_schema

        shape = as_schema(schema)
        fields, schema_json = list(shape.fields), shape.json_schema
    notes: list[str] = []
    prompts = filled_prompts(session, template, given, namespace, notes, "the template")
    systems = None
    if system:
        systems = filled_prompts(session, system, given, namespace, notes, "the system prompt")
    # Only now, every prompt checked, is a server looked for (the automatic choice probes some).
    urls: list[str | None] = list(hosts) if hosts else [host]
    targets = [session.target(binding, model, url) for url in urls]
    places = [_Place(session.binding(t), url) for t, url in zip(targets, urls, strict=True)]
    for place in places:
        _ = getattr(place.binding, "client", None)  # open each HTTP client before threads share it
    # The embedded model writes one answer at a time (it refuses a second at once).
    hosts_ = [Host(p, 1 if p.name == "llamacpp" else concurrency) for p in places]
    empty: list[Any] = [None] * len(given)
    result = MapResult(empty, list(given.labels), [None] * len(given), given, fields, notes=notes)
    cache = CallCache(resume, _MEMORY)
    label = f"{targets[0].name}:{targets[0].model}"
    keys: list[str] = []
    if cache.enabled:
        extra = {**checked, "schema": schema_json} if schema is not None else checked
        keys = [_key(label, prompts[i], systems[i] if systems else None, extra) for i in range(len(given))]
    jobs = []
    for position in range(len(given)):
        stored = cache.get(keys[position]) if keys else None
        if stored is not None and (schema is None or "data" in stored):
            result.results[position] = stored["data"] if schema is not None else str(stored["text"]).strip()
            result.cached += 1
        else:
            jobs.append(position)
    result.done = result.cached
    tracker = _Tracker(progress, len(given), result.cached)
    sender = _Sender(session, prompts, systems, (binding, model), shape, checked)
    lock = threading.Lock()

    # The scheduler numbers the jobs; jobs[n] is the item's position.
    def on_done(n: int, answer: tuple[Any, str]) -> None:
        position, (value, text) = jobs[n], answer
        result.results[position] = value
        with lock:
            result.done += 1
        if keys and text.strip():  # an empty answer is asked again next time
            cache.put(keys[position], {"text": text} if schema is None else {"text": text, "data": value})
        tracker.step(True)

    def on_failed(n: int, error: BindingError) -> bool:
        result.error_list[jobs[n]] = session.keys.redact(str(error)) or type(error).__name__
        tracker.step(False)
        return not fail_fast

    tracker.emit("start")
    try:
        run_each(
            hosts_, jobs, sender.ask, sender.cancel, on_done=on_done, on_failed=on_failed,
            stop=sender.stop, job_errors=_job_errors(), name="lollms-map",
        )
    except (KeyboardInterrupt, Cancelled):
        sender.stop()
        result.stopped, result.error = True, "interrupted"
    except BindingError as exc:  # every host down, or the first failure with fail_fast
        result.error = session.keys.redact(str(exc))
    result.calls = sender.calls
    result.wall_time = time.perf_counter() - started
    tracker.emit("stopped" if result.error else "done")
    return result


def _key(label: str, prompt: str, system: str | None, options: dict[str, Any]) -> str:
    messages = [{"role": "user", "content": prompt}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return call_key(label, messages, options)
