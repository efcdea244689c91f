"""Request bodies of the OpenAI endpoints: what the gateway needs checked; the rest passes
through to the engine as sent."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class OpenAIRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    stream: bool = False


class Loose(BaseModel):
    """A part of OpenAI's schema: the fields the gateway checks, the rest as sent."""

    model_config = ConfigDict(extra="allow")


def _given(value: Any) -> Any:
    """OpenAI's schema: an optional field is left out, not null (llama-server answers a null
    name, tool_call_id or function description with a 500)."""
    if value is None:
        raise ValueError("leave the field out rather than null")
    return value


class ImageURL(Loose):
    url: str = Field(min_length=1)


PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")


class ContentPart(Loose):
    """A part of a message's content: text, an image, audio, a file or a refusal."""

    type: str = Field(description=f"one of {', '.join(PART_TYPES)}")
    text: str | None = None
    image_url: ImageURL | str | None = None

    @model_validator(mode="after")
    def _complete(self) -> ContentPart:
        if self.type not in PART_TYPES:
            raise ValueError(f"a content part's type is one of {', '.join(PART_TYPES)}")
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs 'text' (a string)")
        if self.type == "image_url" and self.image_url is None:
            raise ValueError("an image_url part needs 'image_url' ({'url': ...})")
        return self


class FunctionCall(Loose):
    name: str = Field(min_length=1)
    arguments: str


class ToolCall(Loose):
    id: str
    type: Literal["function"]  # required, as OpenAI's schema says (llama-server answers 500 without)
    function: FunctionCall


class ChatMessage(Loose):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    _not_null = field_validator("name", "tool_call_id", mode="before")(_given)


class Function(Loose):
    name: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$"
    )  # Rust regex: $ ends the text
    description: str | None = None
    parameters: dict[str, Any] | None = None

    _not_null = field_validator("description", "parameters", mode="before")(_given)


class Tool(Loose):
    type: Literal["function"]
    function: Function


class NamedTool(Loose):
    type: Literal["function"]
    function: dict[str, str]


class ChatRequest(OpenAIRequest):
    """OpenAI's chat request, its messages and tools checked before an engine sees them (an
    engine may answer malformed ones with a 500 of its own)."""

    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedTool | None = None


class CompletionRequest(OpenAIRequest):
    prompt: str | list[str] | list[int] | list[list[int]]


class EmbeddingRequest(OpenAIRequest):
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)


class MessagesRequest(OpenAIRequest):
    """Anthropic's Messages API."""

    max_tokens: int = Field(ge=1)
    messages: list[dict[str, Any]] = Field(min_length=1)


class ResponsesRequest(OpenAIRequest):
    """OpenAI's Responses API (gateway/items.py maps it onto chat completions)."""

    input: str | list[dict[str, Any]] = Field(description="a string, or a list of items")
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    store: bool = True
    background: bool = False
    previous_response_id: str | None = None
    truncation: Literal["auto", "disabled"] | None = Field(
        default=None,
        description="auto: the oldest turns are dropped to fit the context; default: the model's setting",
    )

    @model_validator(mode="after")
    def _served(self) -> ResponsesRequest:
        if isinstance(self.input, list) and not self.input:
            raise ValueError("input holds no item: give it a string or a list of items")
        if self.background and not self.store:
            raise ValueError(
                "a background response is stored: leave store on, then poll GET /v1/responses/{id}"
            )
        if self.background and self.stream:
            raise ValueError("a background response is not streamed here: poll GET /v1/responses/{id}")
        for name in ("conversation", "prompt"):
            if (self.model_extra or {}).get(name) is not None:
                raise ValueError(f"{name} is not supported: send the conversation's items as input")
        return self


class InputTokensRequest(OpenAIRequest):
    """What a Responses request would put before the model, to count its tokens."""

    input: str | list[dict[str, Any]] | None = Field(default=None, description="a string, or a list of items")
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    previous_response_id: str | None = None
    truncation: Literal["auto", "disabled"] | None = None

    @model_validator(mode="after")
    def _served(self) -> InputTokensRequest:
        if (self.model_extra or {}).get("conversation") is not None:
            raise ValueError("conversation is not supported: send the conversation's items as input")
        return self


class RerankRequest(OpenAIRequest):
    query: str = Field(min_length=1)
    documents: list[str | dict[str, Any]] = Field(min_length=1)
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = True


class ClassifyRequest(OpenAIRequest):
    input: str | list[str]


class ImageRequest(OpenAIRequest):
    prompt: str = Field(min_length=1)
    n: int = Field(default=1, ge=1, le=10)
    size: str | None = None
    response_format: str | None = Field(default=None, description="b64_json (default) or url")


class GenerationRequest(ImageRequest):
    upscale: str | None = Field(default=None, description="an upscale model each image goes through after")
    upscale_scale: float | None = Field(
        default=None, ge=1, le=8, description="its scale (default: the model's)"
    )


class ImageEditRequest(ImageRequest):
    image: str = Field(min_length=1, description="a data URL, base64, or a local file path")


class CaptionRequest(OpenAIRequest):
    """modelyard's own route: JSON, or a multipart form with the image as a file."""

    image: str | list[str] = Field(
        min_length=1, description="one image or up to 16: data URLs, base64, or local file paths"
    )
    prompt: str | None = Field(None, description="how the caption starts, e.g. 'a photograph of'")
    max_tokens: int | None = Field(None, ge=1, le=512)


class UpscaleRequest(OpenAIRequest):
    """modelyard's own route: JSON, or a multipart form with the image as a file."""

    image: str | list[str] = Field(
        min_length=1, description="one image or up to 16: data URLs, base64, or local file paths"
    )
    scale: float | None = Field(None, ge=1, le=8, description="the output's scale (default: the model's own)")
    tile_size: int | None = Field(None, ge=0, le=8192, description="input pixels per tile side; 0 = whole")


def _segments() -> list[Literal["word", "segment"]]:
    return ["segment"]


class TranscriptionRequest(BaseModel):
    """OpenAI's audio form (multipart/form-data)."""

    model: str = Field(min_length=1)
    file: bytes = Field(description="the audio: wav, flac, mp3 or ogg")
    language: str | None = Field(None, description="ISO-639-1, e.g. en (transcriptions only)")
    prompt: str | None = Field(None, description="text that came before (Whisper)")
    response_format: Literal["json", "text", "srt", "verbose_json", "vtt"] = "json"
    temperature: float = Field(0.0, ge=0, le=1)
    timestamp_granularities: list[Literal["word", "segment"]] = Field(
        default_factory=_segments, description="verbose_json: segment and / or word times"
    )


class SpeechRequest(OpenAIRequest):
    input: str = Field(min_length=1, max_length=4096)
    voice: str = Field(min_length=1, description="a speaker of the model (any name for a one-speaker model)")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)


class VideoRequest(ImageRequest):
    frames: int = Field(default=17, ge=1, le=257)
    fps: int = Field(default=16, ge=1, le=60)


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str = "modelyard"
    category: str
    loaded: bool
    targets: list[str] | None = Field(None, description="a route's: the models it sends requests to")


class VoiceList(BaseModel):
    model: str
    voices: list[str] = Field(description="what /v1/audio/speech takes as voice")


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


def documented(schema: type[BaseModel], kind: str = "application/json") -> dict[str, Any]:
    """The request body for the OpenAPI docs: the routes parse it themselves. The
    schema's own definitions are inlined, as the document has no place for them."""
    found = schema.model_json_schema()
    defs = found.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"requestBody": {"required": True, "content": {kind: {"schema": inline(found)}}}}
