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

The keys are read once for the whole map (:meth:`KeyStore.held
<lollms_magics.core.keys.KeyStore.held>`): every filled prompt is checked
against them before the first request, and again as it is sent, without
reading the environment once per item. The results and the progress events
are in :mod:`~lollms_magics.core.map_results`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BadRequestError, BindingError, InvalidOptionError
from ..options import validate_options
from ..summaries.calls import Cancelled
from ..summaries.hosts import Host, run_each
from ..summaries.resume import CallCache, Memory, call_key
from .keys import KeySnapshot, KeyStore
from .map_items import filled_prompts, items_of
from .map_results import MapProgress, MapResult, ProgressTracker

if TYPE_CHECKING:
    from ..bindings.base import Binding
    from ..response import Response
    from .target import Target

__all__ = ["MapProgress", "MapResult", "map_memory", "run_map"]



class Mapper(Protocol):
    """What a map needs of the session (a Protocol: the Session builds on this module)."""

    options: dict[str, Any]
    keys: KeyStore
    fill_limit: int

    def target(self, binding: str | None = None, model: str | None = None, host: str | None = None) -> Target:
        ...

    def binding(self, target: Target | None = None) -> Binding: ...

    def ask(self, prompt: str, **options: Any) -> Response: ...


_MEMORY = Memory(limit=100_000)  # about 50 MB of short answers at most
_MOST = 512  # requests at once per host (each is a thread)


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


class _Place:
    """A host's binding, with the URL it was made for (the session finds it again by that URL)."""

    def __init__(self, binding: Any, url: str | None) -> None:
        self.binding = binding
        self.url = url
        self.name = binding.name
        self.host = getattr(binding, "host", None) or binding.name


class _Sender:
    """Sends the prepared prompts: one :meth:`Session.ask` per item, cancelled together on a stop."""

    def __init__(self, session: Mapper, prompts: list[str], systems: list[str] | None,
                 choice: tuple[str | None, str | None], schema: Any, options: dict[str, Any],
                 keys: KeySnapshot) -> None:
        self.session, self.prompts, self.systems = session, prompts, systems
        self.known = keys  # the keys every prompt was checked against, checked again as each is sent
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
        # Session.ask checks the prompt for keys again, against the keys read once for
        # the whole map rather than the environment read once per item.
        with self.session.keys.held(self.known):
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
    session: Mapper,
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
    systems = None
    with session.keys.held() as known:  # the environment read once for every prompt
        prompts = filled_prompts(session, template, given, namespace, notes, "the template")
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
    tracker = ProgressTracker(progress, len(given), result.cached)
    sender = _Sender(session, prompts, systems, (binding, model), shape, checked, known)
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
