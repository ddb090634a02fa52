"""OpenAI's streaming format for chat completions: one place that writes it.

Miners stream what their engine produces; the organic gateway streams the answer it chose
after grading. Both must emit exactly the chunks OpenAI clients parse: `data: {chunk}`
events of `chat.completion.chunk` objects, an optional usage chunk (when the request set
`stream_options.include_usage`) and `data: [DONE]`. A stream that breaks off after its
first chunk (the status line has gone out as 200) ends with an error event,
`data: {"error": {"code", "message"}}`, then `data: [DONE]`, as vLLM's OpenAI server does;
the official OpenAI clients raise `APIError` on that event.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

DONE = b"data: [DONE]\n\n"


def error_event(code: str, message: str) -> bytes:
    """The event that tells a streaming client its answer failed part-way: the same
    `{"error": {"code", "message"}}` object a non-streamed request gets as its body."""
    return f"data: {json.dumps({'error': {'code': code, 'message': message}})}\n\n".encode()


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether the request asked for a final usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


@dataclass(frozen=True)
class ChunkWriter:
    """Encodes the events of one streamed completion (same id, creation time and model).

    `fingerprint` is every chunk's `system_fingerprint`, as OpenAI sends it: a miner whose
    engine is simulated sets `"simulated"`, the same label as its non-streamed answers.
    """

    model: str
    ident: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
    fingerprint: str | None = None

    def _event(self, payload: dict[str, Any], fingerprint: str | None = None) -> bytes:
        base = {"id": self.ident, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": fingerprint or self.fingerprint}
        return f"data: {json.dumps({**base, **payload})}\n\n".encode()

    def content(self, text: str) -> bytes:
        return self._event({"choices": [{"index": 0, "delta": {"content": text},
                                         "finish_reason": None}]})

    def finish(self, reason: str = "stop", extra: dict[str, Any] | None = None,
               fingerprint: str | None = None) -> bytes:
        """The chunk with the finish reason; `extra` adds top-level fields (the miner's
        `subnetlab` block when no usage chunk follows); `fingerprint` overrides the
        writer's for this chunk (a label learnt only at the end of the stream)."""
        return self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}],
                            **(extra or {})}, fingerprint)

    def usage(self, prompt_tokens: int, completion_tokens: int,
              extra: dict[str, Any] | None = None, fingerprint: str | None = None) -> bytes:
        """The usage chunk; `extra` adds top-level fields (the gateway's accounting, the
        miner's `subnetlab` block); `fingerprint` as for :meth:`finish`."""
        return self._event({"choices": [], "usage": {
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}, **(extra or {})}, fingerprint)
