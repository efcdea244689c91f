"""The request bodies the runner takes, one pydantic model per endpoint. A field the runner does
not know is refused by name (never silently dropped); fields that only turn a feature off
(``logprobs: false``) are accepted."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    user: str | None = None  # OpenAI's end-user id: accepted, not used


class EmbeddingsBody(Body):
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    modelyard_tokens: bool = False  # the gateway merged requests: report each input's tokens


class Document(BaseModel):
    text: str


class RerankBody(Body):
    query: str = Field(min_length=1)
    documents: list[str | Document] = Field(min_length=1)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = True

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class ClassifyBody(Body):
    input: str | list[str] = Field(min_length=1)


class StreamOptions(BaseModel):
    include_usage: bool = False


class GenerationBody(Body):
    """The sampling parameters transformers honours, in OpenAI's (and vLLM's) names."""

    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, description="0 = off")
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0, le=10)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: Literal[1] = 1
    logprobs: bool | None = None
    logit_bias: dict[str, float] | None = None
    # classifier-free guidance (text-generation-webui's): the next token's log-probabilities
    # mixed as g x with the prompt + (1 - g) x with the negative prompt
    guidance_scale: float | None = Field(None, ge=-10, le=10)
    negative_prompt: str | None = None
    # structured output: {type: text | json_object | json_schema, json_schema: {name, schema}}
    response_format: dict[str, Any] | None = None
    # a thinking model's thought ends after this many tokens (llama-server's name)
    thinking_budget_tokens: int | None = Field(None, ge=0)

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("logprobs are not available from this engine")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _no_logit_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value:
            raise ValueError("logit_bias is not available from this engine")
        return value

    def stops(self) -> list[str]:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return [s for s in stop if s]


# apply_chat_template's own arguments: never template variables from a request
RESERVED_TEMPLATE_ARGS = frozenset({
    "conversation", "messages", "tools", "documents", "chat_template", "add_generation_prompt",
    "continue_final_message", "tokenize", "padding", "truncation", "max_length", "return_tensors",
    "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs", "processor_kwargs",
})  # fmt: skip


class ChatBody(GenerationBody):
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    # "required" and a named function the gateway forces (gateway/tools.py) before it comes here
    tool_choice: Literal["auto", "none"] | None = None
    parallel_tool_calls: bool | None = None
    # the chat template's own variables, e.g. {"enable_thinking": false}
    chat_template_kwargs: dict[str, Any] | None = None

    @field_validator("chat_template_kwargs")
    @classmethod
    def _template_variables(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        taken = sorted(set(value or ()) & RESERVED_TEMPLATE_ARGS)
        if taken:
            raise ValueError(f"{', '.join(taken)} cannot be set through chat_template_kwargs")
        return value

    def calls_tools(self) -> bool:
        """Whether the answer may call the tools it is shown (not with tool_choice "none")."""
        return bool(self.tools) and self.tool_choice != "none"


class TokenizeBody(Body):
    """vLLM's /tokenize: a chat's messages (as the template makes them a prompt) or a prompt."""

    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    tools: list[dict[str, Any]] | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> TokenizeBody:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give messages or a prompt")
        return self


class CompletionBody(GenerationBody):
    prompt: str | list[str] | list[int] = Field(min_length=1)


class ImageBody(Body):
    prompt: str = Field(min_length=1)
    n: int = Field(1, ge=1, le=10)
    size: str | None = Field(None, description="WIDTHxHEIGHT, multiples of 8 up to 4096, or auto")
    response_format: Literal["b64_json", "url"] = "b64_json"
    steps: int | None = Field(None, ge=1, le=1000)
    guidance_scale: float | None = Field(None, ge=0, le=50)
    negative_prompt: str | None = None
    seed: int | None = None
    quality: str | None = None  # OpenAI's: accepted, not used
    style: str | None = None  # OpenAI's: accepted, not used


class ImageEditBody(ImageBody):
    image: str = Field(min_length=1, description="a data URL, base64, or a local file path")
    strength: float = Field(0.75, gt=0, le=1)


class VideoBody(ImageBody):
    frames: int = Field(17, ge=1, le=257)
    fps: int = Field(16, ge=1, le=60)


def _segments() -> list[Literal["word", "segment"]]:
    return ["segment"]


class TranscriptionBody(Body):
    """OpenAI's /v1/audio/transcriptions and /v1/audio/translations form."""

    file: str = Field(
        min_length=1, description="the audio: a data URL (a form's file), base64, or a local path"
    )
    language: str | None = Field(None, min_length=2, max_length=8, description="ISO-639-1, e.g. en")
    prompt: str | None = Field(None, max_length=4096, description="text that came before (Whisper)")
    response_format: Literal["json", "text", "srt", "verbose_json", "vtt"] = "json"
    temperature: float = Field(0.0, ge=0, le=1)
    timestamp_granularities: list[Literal["word", "segment"]] = Field(default_factory=_segments)

    @field_validator("timestamp_granularities", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class SpeechBody(Body):
    """OpenAI's /v1/audio/speech."""

    input: str = Field(min_length=1, max_length=4096)
    voice: str = Field(min_length=1, description="a speaker of the model (any name for a one-speaker model)")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)


class ImagesBody(Body):
    """A body that carries an image, or up to 16."""

    image: str | list[str] = Field(min_length=1, description="a data URL, base64 or a local file path")

    @field_validator("image")
    @classmethod
    def _at_most(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) > 16:
            raise ValueError("at most 16 images per request")
        return value

    def images(self) -> list[str]:
        return self.image if isinstance(self.image, list) else [self.image]


class CaptionBody(ImagesBody):
    """modelyard's /v1/images/captions: images to describe."""

    prompt: str | None = Field(
        None, max_length=1000, description="the caption's start (conditional captioning)"
    )
    max_tokens: int | None = Field(None, ge=1, le=512)


class UpscaleBody(ImagesBody):
    """modelyard's /v1/images/upscale: images made bigger."""

    scale: float | None = Field(None, ge=1, le=8, description="the output's scale (default: the model's own)")
    tile_size: int | None = Field(None, ge=0, le=8192, description="input pixels per tile side; 0 = whole")
    response_format: Literal["b64_json"] = "b64_json"


class FaceEmbeddingsBody(Body):
    """/v1/embeddings for a face model: each input is an image; each face found gets a vector."""

    input: str | list[str] = Field(min_length=1, description="images: data URLs, base64 or local file paths")
    encoding_format: Literal["float", "base64"] = "float"

    def images(self) -> list[str]:
        return self.input if isinstance(self.input, list) else [self.input]
