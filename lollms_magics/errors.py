"""The errors of lollms-magics, one small hierarchy.

Every message is one line a notebook user can act on. No message ever
contains an API key: errors are built from server bodies and URLs, never
from request headers.

    LollmsMagicsError
    ├── InvalidOptionError (ValueError)     a bad option name or value, caught before any request
    ├── InvalidImageError (ValueError)      an image that cannot be read or recognised
    ├── PromptError (ValueError)            a prompt that cannot be filled from the variables it names
    ├── UnknownBindingError (KeyError)      no binding of that name is installed
    ├── MissingDependencyError (ImportError) an optional extra is not installed
    ├── NoBackendError                      the automatic choice found no model anywhere
    ├── UnsupportedFeatureError (NotImplementedError) the server's API has no call for that
    ├── DocumentError (ValueError)          a document to summarize that cannot be read
    └── BindingError                        anything a server or the network did
        ├── ServerUnreachableError          connection refused, DNS failure
        │   └── NotRecordedError            a replay file holds no answer for the request
        ├── RequestNotSentError             our request could not be sent as built (a header HTTP refuses)
        ├── BindingTimeout                  no answer within the connect or read timeout
        ├── AuthenticationError             missing or rejected API key (401, 403)
        ├── UnknownModelError (KeyError)    the server does not have that model
        ├── RateLimitError                  429 after retries, or a quota that is used up
        ├── BadRequestError                 the server refused the request (other 4xx)
        ├── ServerError                     5xx, or an error reported in a 200 body
        ├── ProtocolError                   a body that does not follow the protocol
        │   └── ResponseTooLargeError       a body past the transport's cap (MAX_BODY_BYTES)
        ├── StreamBrokenError               the answer stopped part-way; ``partial_text`` holds what came
        ├── StructuredOutputError           an answer asked for as data that does not fit its schema
        └── UnexpectedError                 a failure the binding did not foresee (a library's, a bug)

Every ``BindingError`` keeps in ``partial_text`` the text received before
it. The magics show any of these as one line and fail the cell (the
traceback only with ``--debug``).
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BindingError",
    "BindingTimeout",
    "DocumentError",
    "InvalidImageError",
    "InvalidOptionError",
    "LollmsMagicsError",
    "LollmsMagicsWarning",
    "MissingDependencyError",
    "NoBackendError",
    "NotRecordedError",
    "PromptError",
    "ProtocolError",
    "RateLimitError",
    "RequestNotSentError",
    "ResponseTooLargeError",
    "ServerError",
    "ServerUnreachableError",
    "StreamBrokenError",
    "StructuredOutputError",
    "UnexpectedError",
    "UnknownBindingError",
    "UnknownModelError",
    "UnsupportedFeatureError",
    "UnsupportedOptionWarning",
]


class LollmsMagicsError(Exception):
    """Base of every error raised by lollms-magics."""

    def __str__(self) -> str:
        # KeyError subclasses would otherwise print their message in quotes.
        return str(self.args[0]) if self.args else self.__class__.__name__


class LollmsMagicsWarning(UserWarning):
    """Base of the warnings issued by lollms-magics."""


class UnsupportedOptionWarning(LollmsMagicsWarning):
    """Issued when a backend cannot honour an option it was given."""


class InvalidOptionError(LollmsMagicsError, ValueError):
    """Raised when a generation option has an unknown name or a bad value."""


class InvalidImageError(LollmsMagicsError, ValueError):
    """Raised when an image cannot be read or its format recognised."""


class PromptError(LollmsMagicsError, ValueError):
    """Raised when a prompt cannot be filled from the variables it names (a method, say)."""


class UnknownBindingError(LollmsMagicsError, KeyError):
    """Raised when no installed binding has the requested name."""


class MissingDependencyError(LollmsMagicsError, ImportError):
    """Raised when a feature needs an optional extra that is not installed."""


class NoBackendError(LollmsMagicsError):
    """Raised when the automatic choice of backend finds no model to use."""


class DocumentError(LollmsMagicsError, ValueError):
    """Raised when a source to summarize is missing, unsupported, corrupt, empty or unreachable."""


class UnsupportedFeatureError(LollmsMagicsError, NotImplementedError):
    """Raised when a server's API has no call for what was asked (image settings, services...)."""


class BindingError(LollmsMagicsError):
    """Raised for anything a server or the network did wrong.

    Attributes
    ----------
    binding:
        Name of the binding that raised it (``"ollama"``...).
    url:
        The URL of the request, when there was one.
    status_code:
        The HTTP status, when the server answered.
    partial_text:
        The text received before the failure (empty if none came).
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        binding: str = "",
        url: str = "",
        status_code: int | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.binding = binding
        self.url = url
        self.status_code = status_code
        self.partial_text = partial_text


class ServerUnreachableError(BindingError):
    """Raised when the server cannot be reached (refused, unknown host...)."""


class NotRecordedError(ServerUnreachableError):
    """Raised when a replay file holds no answer for a request and no live fallback was asked for."""


class RequestNotSentError(BindingError):
    """Raised when the HTTP library refuses our own request before sending it.

    A header value HTTP cannot carry (a key with a line break that got past
    the checks, say): the server was never asked, so it is not reported as
    unreachable, and the library's message, which quotes the header, is not shown.
    """


class BindingTimeout(BindingError):
    """Raised when the server does not answer within the configured timeout."""


class AuthenticationError(BindingError):
    """Raised when the API key is missing or rejected (HTTP 401 or 403)."""


class UnknownModelError(BindingError, KeyError):
    """Raised when the server does not have the requested model.

    ``available`` lists the models the server reported, when it could be asked.
    """

    def __init__(self, message: str, *, available: list[str] | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.available = available or []


class RateLimitError(BindingError):
    """Raised on HTTP 429 once retries are spent, or at once for a used-up quota."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class BadRequestError(BindingError):
    """Raised when the server refuses the request (a 4xx other than 401/403/404/429)."""


class ServerError(BindingError):
    """Raised on HTTP 5xx, or when a server reports an error in a 200 body."""


class ProtocolError(BindingError):
    """Raised when a response does not follow the binding's protocol."""


class ResponseTooLargeError(ProtocolError):
    """Raised when a response body is longer than the transport reads (``MAX_BODY_BYTES``)."""


class StreamBrokenError(BindingError):
    """Raised when a streamed answer stops part-way.

    The server reported an error in the stream, closed the connection early,
    ended without its end marker, or went silent past the read timeout.
    ``partial_text`` holds the text received until then.
    """


class StructuredOutputError(BindingError):
    """Raised when an answer asked for with a schema still does not fit it after one repair.

    The message names the first field that failed (``year: 'nineteen' is not
    of type 'integer'``), or says that the answer held no JSON;
    ``partial_text`` keeps the answer's raw text.
    """


class UnexpectedError(BindingError):
    """Raised when a binding fails in a way it did not foresee.

    A library's own exception (llama.cpp's ``RuntimeError``) or a bug in a
    parser: the message names it, ``__cause__`` holds it, and the text
    received before it is kept in ``partial_text``.
    """
