"""The rooms of :class:`Session` built on others: pictures, one prompt over many items, long documents.

Each method here is a short entry point onto its own package (``tti``,
:mod:`.mapping`, ``summaries``), checking keys on the way in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ServerUnreachableError
from .fallback import Fallbacks
from .imaging import ImageChoice
from .keys import KeyStore
from .target import Target
from .usage import UsageLog

if TYPE_CHECKING:
    from ..bindings.base import Binding
    from ..response import Response
    from ..summaries.document import Document
    from ..summaries.result import Summary
    from ..tti.base import ImageBinding, ImageResult
    from .mapping import MapProgress, MapResult


class Rooms:
    """Pictures, mapping and summaries on :class:`~lollms_magics.core.session.Session`."""

    keys: KeyStore
    usage: UsageLog
    options: dict[str, Any]
    fill_limit: int
    _images: ImageChoice
    _fallbacks: Fallbacks

    if TYPE_CHECKING:

        def target(
            self, binding: str | None = None, model: str | None = None, host: str | None = None
        ) -> Target: ...

        def binding(self, target: Target | None = None) -> Binding: ...

        def set_key(self, binding: str, key: str | None) -> None: ...

        def ask(self, prompt: str, **options: Any) -> Response: ...

        def _prepared(
            self, text: str, namespace: Mapping[str, Any] | None, what: str = "this prompt"
        ) -> tuple[str, list[str]]: ...

    # -- pictures (text-to-image) -----------------------------------------------------
    # The image backend is kept apart from the text one (see core/imaging.py); keys
    # are shared by binding name.

    def use_image(
        self, binding: str = "auto", model: str | None = None, host: str | None = None,
        *, api_key: str | None = None, **config: Any,
    ) -> Target | None:
        """Make ``binding`` (``"a1111"``, ``"comfyui:sdxl.safetensors"``...) the image default.

        ``config`` holds binding settings kept for it (``client_id=``, ``workflow=``,
        ``read_timeout=``); ``"auto"`` returns to the automatic choice.
        """
        if api_key:
            self.set_key(binding.partition(":")[0], api_key)
        return self._images.use(binding, model, host, **config)

    @property
    def image_chosen(self) -> Target | None:
        """The image backend chosen with :meth:`use_image`, if any (nothing is probed)."""
        return self._images.chosen

    def image_target(
        self, binding: str | None = None, model: str | None = None, host: str | None = None
    ) -> Target:
        """Where a picture request goes: the given binding over the image default, else the automatic one."""
        return self._images.target(binding, model, host)

    def image_binding(self, target: Target | None = None, **config: Any) -> ImageBinding:
        """The image binding for ``target``, made once per (name, host, model, key, settings)."""
        return self._images.binding(target, **config)

    def image(
        self, prompt: str, *, binding: str | None = None, model: str | None = None, host: str | None = None,
        negative_prompt: str = "", width: int | None = None, height: int | None = None,
        seed: int | None = None, steps: int | None = None, cfg_scale: float | None = None, n: int = 1,
        progress: Any = None, namespace: Mapping[str, Any] | None = None, timeout: float | None = None,
        **extra: Any,
    ) -> ImageResult:
        """Make ``n`` pictures of ``prompt``; returns an :class:`~lollms_magics.tti.base.ImageResult`.

        ``namespace`` fills ``{name}`` references as for text prompts; ``progress`` is
        called with a fraction (or None while the amount is unknown); ``timeout`` is the
        seconds the picture may take; ``extra`` goes to the server (``sampler_name=``...).
        """
        prompt, _ = self._prepared(prompt, namespace, "the image prompt")
        negative_prompt, _ = self._prepared(negative_prompt, namespace, "the negative prompt")
        target = self.image_target(binding, model, host)
        config = {"read_timeout": timeout} if timeout else {}
        chosen = self.image_binding(target, **config)
        try:  # the image fallbacks make it when the chosen server fails (Session(image_fallbacks=...))
            result = self._fallbacks.make_images(
                chosen, target, lambda t: self._images.binding(t, **config),
                lambda b: b.create_images(
                    prompt, negative_prompt, width, height, seed, steps, cfg_scale, n, progress=progress,
                    **extra,
                ),
            )
        except ServerUnreachableError:
            self._images.forget_auto(target)  # the server went away: choose again next time
            raise
        self.usage.record_images(result)  # %lollms usage counts pictures apart from tokens
        return result

    def close_images(self) -> None:
        """Close the image bindings' connections."""
        self._images.close()

    # -- one prompt over many items ---------------------------------------------------

    def map(
        self,
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
        """Ask ``template`` once per item, filled with it: a :class:`~lollms_magics.core.mapping.MapResult`.

        ``items`` is a list, a dict, a pandas Series or DataFrame (a row per
        item), a glob of files (each file's text) or any iterable; ``{item}``,
        ``{item.field}`` and ``{item["col"]}`` in ``template`` (and ``system``)
        name it, other ``{names}`` come from ``namespace``. Every prompt is
        filled and checked for keys before the first is sent; each is sent
        alone (no history), ``concurrency`` at once per host, spread over
        ``hosts`` (URLs of the same binding). ``schema`` makes each result data
        (see :meth:`ask`). A failed item keeps its error and the others go on,
        unless ``fail_fast``. ``resume`` (True, False or a folder) keeps the
        answers, so the same map run again sends only what is missing or
        failed. An interrupt returns what was done, with ``stopped`` set.
        ``result.output()`` lines the results up with the items.
        """
        from .mapping import run_map

        return run_map(
            self, template, items, binding=binding, model=model, host=host, hosts=hosts, system=system,
            schema=schema, concurrency=concurrency, fail_fast=fail_fast, resume=resume, progress=progress,
            namespace=namespace, **options,
        )

    # -- long documents -------------------------------------------------------------

    def summarize(
        self,
        source: Any,
        *,
        binding: str | None = None,
        model: str | None = None,
        host: str | None = None,
        hosts: Sequence[str] | None = None,
        **options: Any,
    ) -> Summary:
        """Summarize a document longer than the context; see :func:`lollms_magics.summaries.summarize`.

        ``source`` is text, a DataFrame, a file, a folder, a glob or a URL;
        ``hosts`` (server URLs of the same binding) share the work, each with
        ``concurrency`` requests at once; ``options`` are ``summarize``'s
        (``mode``, ``instruction``, ``format``, ``ctx_size``, ``progress``...).
        """
        from ..summaries import summarize

        document = self.load_document(source)  # read and checked before any server is asked
        for field in ("instruction", "format"):
            if isinstance(options.get(field), str):
                self.keys.refuse(options[field], f"the summary's {field}")
        urls: Sequence[str | None] = list(hosts) if hosts else [host]
        targets = [self.target(binding, model, url) for url in urls]
        bindings = [self.binding(target) for target in targets]
        options.setdefault("on_call", lambda response: self.usage.record(response, targets[0].name))
        return summarize(document, bindings, **options)

    def load_document(self, source: Any) -> Document:
        """Read ``source`` as :meth:`summarize` would; refused when it holds a known API key.

        A document is sent to the server piece by piece and its summary may
        repeat it, so a key in it is refused before anything is sent, as in
        a prompt (:class:`PromptError` naming the document).
        """
        from ..summaries import load_source

        document = load_source(source)
        if self.keys.holds_secret(document.text):
            name = self.keys.redact(document.name)
            named = name not in ("text", "document", "table") and not name.endswith(" texts")
            self.keys.refuse(document.text, f"the document {name}" if named else "the text to summarize")
        return document
