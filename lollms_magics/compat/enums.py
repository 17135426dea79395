"""lollms-client's enumerations, with the member names of every era.

``MSG_TYPE`` numbers changed twice in lollms-client (0.20.x renamed the
``MSG_TYPE_FULL*`` members ``MSG_TYPE_CONTENT*``; 0.21.0 inserted the thought
types and renumbered everything after them), so code must compare members,
never numbers: ``msg_type == MSG_TYPE.MSG_TYPE_CHUNK``. The values here are
those of the newest era (0.21 to 1.21), the old names are aliases of the new
members (``MSG_TYPE.MSG_TYPE_FULL is MSG_TYPE.MSG_TYPE_CONTENT``), and, as in
lollms-client, ``MSG_TYPE`` is a plain :class:`enum.Enum`: a member never
equals an ``int``. Values 32 and up (registered at run time by lollms-client
1.21's swarm module, "do not hardcode") are left out.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ELF_COMPLETION_FORMAT", "ELF_GENERATION_FORMAT", "MSG_TYPE", "SENDER_TYPES", "SUMMARY_MODE"]


class MSG_TYPE(Enum):
    """What a callback's ``chunk`` is: answer text, reasoning, a step of a long task, an error..."""

    MSG_TYPE_CHUNK = 0
    MSG_TYPE_CONTENT = 1
    MSG_TYPE_CONTENT_INVISIBLE_TO_AI = 2
    MSG_TYPE_CONTENT_INVISIBLE_TO_USER = 3
    MSG_TYPE_THOUGHT_CHUNK = 4
    MSG_TYPE_THOUGHT_CONTENT = 5
    MSG_TYPE_EXCEPTION = 6
    MSG_TYPE_WARNING = 7
    MSG_TYPE_INFO = 8
    MSG_TYPE_STEP = 9
    MSG_TYPE_STEP_START = 10
    MSG_TYPE_STEP_PROGRESS = 11
    MSG_TYPE_STEP_END = 12
    MSG_TYPE_JSON_INFOS = 13
    MSG_TYPE_REF = 14
    MSG_TYPE_CODE = 15
    MSG_TYPE_UI = 16
    MSG_TYPE_NEW_MESSAGE = 17
    MSG_TYPE_FINISHED_MESSAGE = 18
    MSG_TYPE_TOOL_CALL = 19
    MSG_TYPE_TOOL_OUTPUT = 20
    MSG_TYPE_REASONING = 21
    MSG_TYPE_SCRATCHPAD = 22
    MSG_TYPE_OBSERVATION = 23
    MSG_TYPE_ERROR = 24
    MSG_TYPE_GENERATING_TITLE_START = 25
    MSG_TYPE_GENERATING_TITLE_END = 26
    MSG_TYPE_SOURCES_LIST = 27
    MSG_TYPE_INIT_PROGRESS = 28
    MSG_TYPE_ARTEFACTS_STATE_CHANGED = 29
    MSG_TYPE_TOOLS_LIST = 30
    MSG_TYPE_CONTEXT_COMPRESSION = 31
    # The names of lollms-client <= 0.20.6, aliases of the members above.
    MSG_TYPE_FULL = 1
    MSG_TYPE_FULL_INVISIBLE_TO_AI = 2
    MSG_TYPE_FULL_INVISIBLE_TO_USER = 3


class SENDER_TYPES(Enum):
    """Who wrote a message."""

    SENDER_TYPES_USER = 0
    SENDER_TYPES_AI = 1
    SENDER_TYPES_SYSTEM = 2


class SUMMARY_MODE(Enum):
    """lollms-client's summary modes (both members share one value there too)."""

    SUMMARY_MODE_SEQUENCIAL = 0
    SUMMARY_MODE_HIERARCHICAL = 0


class ELF_GENERATION_FORMAT(Enum):
    """The backend families of lollms-client <= 0.9 (imported by the course, unused since 0.10).

    :meth:`binding_name` gives the lollms-magics binding a format stands for.
    """

    LOLLMS = 0
    OPENAI = 1
    OLLAMA = 2
    LITELLM = 3
    TRANSFORMERS = 4
    VLLM = 5

    @classmethod
    def from_string(cls, name: str) -> ELF_GENERATION_FORMAT:
        """The member called ``name``, in any case (``"ollama"`` -> ``OLLAMA``)."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown generation format {name!r}; the formats are: {', '.join(cls.__members__)}"
            ) from None

    def binding_name(self) -> str:
        """The binding that speaks this format here (vLLM and LiteLLM servers speak OpenAI's API)."""
        return {"LOLLMS": "lollms", "OLLAMA": "ollama", "TRANSFORMERS": "llamacpp"}.get(self.name, "openai")

    def __str__(self) -> str:
        return self.name


class ELF_COMPLETION_FORMAT(Enum):
    """Whether a model is prompted with plain text or with chat messages."""

    Instruct = 0
    Chat = 1

    @classmethod
    def from_string(cls, name: str) -> ELF_COMPLETION_FORMAT:
        """The member called ``name``, in any case (lollms-client's own version of this always failed)."""
        for member in cls:
            if member.name.lower() == name.strip().lower():
                return member
        raise ValueError(f"unknown completion format {name!r}; the formats are: Instruct, Chat")

    def __str__(self) -> str:
        return self.name
