"""The runner's OpenAI serving of text generation: chat completions and completions, whole or as
server-sent events, built from typed responses. The model code (textgen.py, exl2.py, a
captioner) only makes text; what OpenAI's clients read is made here."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from modelyard.errors import InvalidRequest, ModelyardError
from modelyard.http_errors import OPENAI
from modelyard.runners.reasoning import Splitter as ReasoningSplitter
from modelyard.runners.reasoning import split as split_reasoning
from modelyard.runners.requests import ChatBody, CompletionBody, GenerationBody, TokenizeBody
from modelyard.runners.toolcalls import Holder
from modelyard.runners.toolcalls import parse as parse_calls

if TYPE_CHECKING:
    from modelyard.runners.textgen import Generator, Prompt, Sampling

# -- the responses ----------------------------------------------------------------------------
# Written with exclude_unset: a field without a default is always there (null where OpenAI's
# clients expect null), one with a default only where it was set.


class PredictionTokens(BaseModel):
    accepted_prediction_tokens: int
    rejected_prediction_tokens: int


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: PredictionTokens | None = None


class Message(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(BaseModel):
    index: int
    message: Message
    finish_reason: str


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: str | None


class TextChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None
    logprobs: None


class Answer(BaseModel):
    """A chat completion, a chat completion chunk, or a text completion (whole or a chunk)."""

    id: str
    object: Literal["chat.completion", "chat.completion.chunk", "text_completion"]
    created: int
    model: str
    choices: list[ChatChoice] | list[ChunkChoice] | list[TextChoice]
    usage: Usage | None = None
    timings: dict[str, Any] | None = None  # llama-server's names: the gateway counts them

    def event(self) -> bytes:
        """The answer as one server-sent event."""
        return b"data: " + self.body() + b"\n\n"

    def body(self) -> bytes:
        """The answer as a JSON body."""
        return self.model_dump_json(exclude_unset=True).encode()


DONE = b"data: [DONE]\n\n"


def answer_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage_of(prompt: int, completion: int) -> Usage:
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


# -- chat and completions on a Generator ------------------------------------------------------


async def chat(gen: Generator, body: ChatBody, name: str) -> Answer | AsyncIterator[bytes]:
    kwargs = body.chat_template_kwargs or {}
    prompt = await asyncio.to_thread(gen.chat_prompt, body.messages, body.tools, kwargs)  # images decode here
    # a constrained answer is the caller's JSON (a forced call's too: the gateway reads it)
    family = gen.tool_family if body.calls_tools() and body.response_format is None else None
    return await _answer(gen, body, name, prompt, chat=True, tools=family)


async def tokenize(gen: Generator, body: TokenizeBody, name: str) -> dict[str, Any]:
    """The tokens of a chat (its messages as the template makes them a prompt) or of a prompt,
    as vLLM's /tokenize counts them."""
    if body.messages is not None:
        prompt = await asyncio.to_thread(
            gen.chat_prompt, body.messages, body.tools, body.chat_template_kwargs or {}
        )
    else:
        prompt = gen.text_prompt(body.prompt or "")
    return {"count": len(prompt.ids), "max_model_len": gen.n_ctx, "tokens": prompt.ids}


async def complete(gen: Generator, body: CompletionBody, name: str) -> Answer | AsyncIterator[bytes]:
    return await _answer(gen, body, name, gen.text_prompt(body.prompt), chat=False)


async def _answer(
    gen: Generator, body: GenerationBody, name: str, prompt: Prompt, *, chat: bool, tools: str | None = None
) -> Answer | AsyncIterator[bytes]:
    """The answer, whole or streamed; ``tools``: the family whose tool calls are read out of it."""
    s = gen.sampling(body, len(prompt.ids))
    s.grammar = await asyncio.to_thread(gen.grammar, body)
    if s.grammar is not None:
        prompt.thinking = None  # the answer is the JSON asked for, from its first token
    if body.guidance_scale is not None and body.guidance_scale != 1:
        prompt.negative = gen.negative_ids(body.negative_prompt or "")
    elif body.negative_prompt:
        raise InvalidRequest(
            "negative_prompt works with guidance_scale (classifier-free guidance): set it, e.g. 1.5",
            param="guidance_scale",
        )
    head = Head(answer_id("chatcmpl" if chat else "cmpl"), int(time.time()), name, chat)
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return _events(gen, prompt, s, head, usage=usage, tools=tools)
    text, reason, n = "", "stop", 0
    clock = Decode()
    async for piece, why, count in gen.stream(prompt, s):
        text, reason, n = text + piece, why or reason, count
        clock.tick(count)
    usage_body, timings = _usage(len(prompt.ids), n, s, clock)
    if not chat:
        choice = TextChoice(index=0, text=text, finish_reason=reason, logprobs=None)
        return head.answer([choice], usage=usage_body, timings=timings)
    message = Message(content=text)
    if prompt.thinking is not None:
        thought, message.content = split_reasoning(text, prompt.thinking)
        if thought is not None:
            message.reasoning_content = thought
    if tools is not None:
        content, calls = parse_calls(message.content or "", tools)
        if calls:
            message.content, message.tool_calls, reason = content or None, calls, "tool_calls"
    choices = [ChatChoice(index=0, message=message, finish_reason=reason)]
    return head.answer(choices, usage=usage_body, timings=timings)


@dataclass(frozen=True)
class Head:
    """What every piece of one answer shares."""

    id: str
    created: int
    model: str
    chat: bool

    def answer(
        self,
        choices: list[ChatChoice] | list[ChunkChoice] | list[TextChoice],
        *,
        chunk: bool = False,
        usage: Usage | None = None,
        timings: dict[str, Any] | None = None,
    ) -> Answer:
        kind = ("chat.completion.chunk" if chunk else "chat.completion") if self.chat else "text_completion"
        answer = Answer(id=self.id, object=kind, created=self.created, model=self.model, choices=choices)
        if usage is not None:
            answer.usage = usage
        if timings:
            answer.timings = timings
        return answer

    def delta(self, delta: Delta, finish: str | None = None) -> bytes:
        """A chunk of the answer, as an event: a chat delta, or a completion's text."""
        if self.chat:
            return self.answer([ChunkChoice(index=0, delta=delta, finish_reason=finish)], chunk=True).event()
        text = TextChoice(index=0, text=delta.content or "", finish_reason=finish, logprobs=None)
        return self.answer([text], chunk=True).event()

    def usage(self, usage: Usage, timings: dict[str, Any] | None = None) -> bytes:
        """The usage-only chunk a client asked for (``stream_options.include_usage``)."""
        return self.answer([], chunk=True, usage=usage, timings=timings).event()


@dataclass
class Decode:
    """When an answer's tokens came: from its first to its last (the decode, prefill aside)."""

    first: float | None = None
    last: float = 0.0
    tokens: int = 0

    def tick(self, count: int) -> None:
        now = time.perf_counter()
        if self.first is None and count:
            self.first, self.tokens = now, count
        self.last = now
        self.tokens = max(self.tokens, count)

    def timings(self) -> dict[str, Any]:
        """llama-server's names: tokens decoded after the first, and their milliseconds."""
        if self.first is None or self.tokens < 2 or self.last <= self.first:
            return {}
        ms = (self.last - self.first) * 1000
        return {
            "predicted_n": self.tokens - 1,
            "predicted_ms": ms,
            "predicted_per_second": (self.tokens - 1) / ms * 1000,
        }


def _usage(prompt: int, completion: int, s: Sampling, clock: Decode) -> tuple[Usage, dict[str, Any] | None]:
    """The usage, and llama-server-style timings (the decode rate, drafts made), which the gateway
    counts in its metrics; drafts also as OpenAI's accepted and rejected prediction tokens."""
    usage = usage_of(prompt, completion)
    timings = clock.timings()
    if s.drafts is not None:
        drafted, accepted = s.drafts
        usage.completion_tokens_details = PredictionTokens(
            accepted_prediction_tokens=accepted, rejected_prediction_tokens=drafted - accepted
        )
        timings.update(draft_n=drafted, draft_n_accepted=accepted)
    return usage, timings or None


async def _events(
    gen: Generator, prompt: Prompt, s: Sampling, head: Head, *, usage: bool, tools: str | None = None
) -> AsyncIterator[bytes]:
    """The answer as server-sent events: chat deltas of reasoning, content and tool calls (each
    call whole, once the answer ended), or completion text."""
    n = 0
    if head.chat:
        yield head.delta(Delta(role="assistant", content=""))
    thoughts = ReasoningSplitter(prompt.thinking) if head.chat and prompt.thinking is not None else None
    holder = Holder(tools) if tools is not None else None
    clock = Decode()
    try:
        async for piece, reason, count in gen.stream(prompt, s):
            n = count
            clock.tick(count)
            thought, text = thoughts.feed(piece) if thoughts is not None else ("", piece)
            if reason is not None and thoughts is not None:
                more_thought, more_text = thoughts.finish()
                thought, text = thought + more_thought, text + more_text
            if thought:
                yield head.delta(Delta(reasoning_content=thought))
            calls: list[dict[str, Any]] = []
            if holder is not None:
                text = holder.feed(text)
                if reason is not None:  # the end: what was held back, and the calls
                    rest, calls = holder.finish()
                    text += rest
            if text:
                yield head.delta(Delta(content=text))
            for i, call in enumerate(calls):
                yield head.delta(Delta(tool_calls=[{"index": i, **call}]))
            if reason is not None:
                yield head.delta(Delta(), "tool_calls" if calls else reason)
    except ModelyardError as e:
        yield OPENAI.piece(e)
        return
    if usage:
        yield head.usage(*_usage(len(prompt.ids), n, s, clock))
    yield DONE
