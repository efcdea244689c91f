"""Routes of custom model creation: presets, pretrained tokenizers, the live preview (parameters,
memory, problems per field), validation, and export jobs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from modelyard.api.routing import StrictRoute
from modelyard.create import vocab
from modelyard.create.design import Design, Parameters, parameters, weight_bytes
from modelyard.create.jobs import WARNING, Creation, Creations
from modelyard.create.plan import Memory, Plan, Preview, TokenizerPlan
from modelyard.create.presets import preset, presets
from modelyard.errors import InvalidDesign
from modelyard.http_errors import ErrorBody
from modelyard.monitor.sampler import Monitor

router = APIRouter(
    route_class=StrictRoute,
    prefix="/api/create",
    tags=["create"],
    responses={c: {"model": ErrorBody} for c in (400, 401, 403, 404, 503)},
)
JobId = Annotated[int, Path(ge=1, le=(1 << 63) - 1, description="a creation's id")]


def creations_of(request: Request) -> Creations:
    creations: Creations = request.app.state.creations
    return creations


def memory_now(monitor: Monitor) -> Memory:
    """Free memory where the model would run: the GPU with the most free memory, else RAM."""
    sample = monitor.current
    free_vram = [
        g.memory_total - g.memory_used for g in sample.gpus if g.memory_total and g.memory_used is not None
    ]
    if free_vram:
        return Memory(max(free_vram), "cuda")
    return Memory(sample.memory_total - sample.memory_used, "cpu")


Family = Literal["llama", "mistral", "qwen2", "qwen3"]
Dtype = Literal["float32", "float16", "bfloat16"]


class DesignIn(BaseModel):
    """Every field overrides the preset's."""

    family: Family | None = None
    vocab_size: int | None = Field(default=None, description="10,000-100,000")
    hidden_size: int | None = Field(default=None, description="128-8,192")
    layers: int | None = None
    heads: int | None = Field(default=None, description="attention heads: divide the hidden size")
    kv_heads: int | None = Field(default=None, description="key/value heads: divide the heads")
    ffn_size: int | None = Field(default=None, description="the feed-forward network's inner size")
    context_length: int | None = None
    tied_embeddings: bool | None = None
    dtype: Dtype | None = None


class TokenizerIn(BaseModel):
    model: str | None = Field(
        default=None, description="a library model's tokenizer (default: a sensible one)"
    )
    corpus: str | None = Field(
        default=None, description="train one from this .txt file (one sentence a line)"
    )
    kind: Literal["sentencepiece", "bpe"] = Field(
        default="sentencepiece", description="sentencepiece (Chinese, Japanese) or bpe (Latin scripts)"
    )
    vocab_size: int = Field(default=16_000, description="8,000-50,000; 16,000-32,000 is best")


class PlanIn(BaseModel):
    preset: str = Field(default="small", description="small, medium, large or free")
    design: DesignIn = Field(default_factory=DesignIn)
    out: str = Field(default="", description="the new model's folder (absolute; new or empty)")
    name: str | None = Field(default=None, description="its library name (default: the folder's name)")
    tokenizer: TokenizerIn = Field(default_factory=TokenizerIn)
    gguf: Literal["F16", "Q8_0"] | None = Field(default=None, description="also write a GGUF for llama.cpp")
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    n_ctx: int | None = Field(default=None, description="the context the memory preview is for")

    def plan(self) -> Plan:
        values = self.design.model_dump(exclude_none=True)
        return Plan(
            design=preset(self.preset).design.with_values(values),
            out=self.out,
            name=self.name,
            tokenizer=TokenizerPlan(**self.tokenizer.model_dump()),
            gguf=self.gguf,
            seed=self.seed,
            n_ctx=self.n_ctx,
        )


class DesignOut(BaseModel):
    family: Family
    vocab_size: int
    hidden_size: int
    layers: int
    heads: int
    kv_heads: int
    ffn_size: int
    context_length: int
    tied_embeddings: bool
    dtype: Dtype

    @classmethod
    def of(cls, d: Design) -> DesignOut:
        return cls(**d.to_json())


class ParametersOut(BaseModel):
    total: int
    embedding: int
    attention: int
    mlp: int
    norms: int
    output: int

    @classmethod
    def of(cls, p: Parameters) -> ParametersOut:
        return cls(total=p.total, embedding=p.embedding, attention=p.attention, mlp=p.mlp, norms=p.norms,
                   output=p.output)  # fmt: skip


class PresetOut(BaseModel):
    name: str
    label: str
    use: str
    design: DesignOut
    parameters: int
    weights: int = Field(description="bytes of weights at the design's dtype")


class ProblemOut(BaseModel):
    field: str = Field(description="the field at fault: a design field, out, name, tokenizer.*, gguf, n_ctx")
    message: str


class MemoryOut(BaseModel):
    device: str = Field(description="where the estimate is for: cpu (RAM) or cuda (the GPU with most free)")
    n_ctx: int
    weights: int
    kv_cache: int
    compute: int
    overhead: int
    total: int
    free: int
    fits: bool


class PreviewOut(BaseModel):
    design: DesignOut
    parameters: ParametersOut
    memory: MemoryOut
    tokenizer: str | None = Field(description="the tokenizer the export will use, in words")
    problems: list[ProblemOut]
    warning: str = WARNING

    @classmethod
    def of(cls, design: Design, p: Preview) -> PreviewOut:
        where = p.estimate.vram[0] if p.estimate.vram else p.estimate.ram
        memory = MemoryOut(
            device=p.memory.device, n_ctx=p.estimate.n_ctx, weights=where.weights, kv_cache=where.kv_cache,
            compute=where.compute, overhead=where.overhead, total=where.total, free=p.memory.free,
            fits=p.needed <= p.memory.free,
        )  # fmt: skip
        return cls(
            design=DesignOut.of(design),
            parameters=ParametersOut.of(p.parameters),
            memory=memory,
            tokenizer=p.tokenizer,
            problems=[ProblemOut(field=x.field, message=x.message) for x in p.problems],
        )


class TokenizerOut(BaseModel):
    model: str
    kind: str
    size: int
    chat_template: bool
    default: bool


class CreationOut(BaseModel):
    id: int
    name: str
    out: str
    state: Literal["running", "done", "failed", "cancelled"]
    stage: str
    progress: float = Field(description="0-1")
    started: float
    finished: float | None
    parameters: int | None
    models: list[str] = Field(description="the library models it made")
    error: str | None
    hint: str | None
    log: str

    @classmethod
    def of(cls, c: Creation) -> CreationOut:
        return cls.model_validate(c.to_json())


@router.get("/presets")
def list_presets() -> list[PresetOut]:
    return [
        PresetOut(
            name=p.name,
            label=p.label,
            use=p.use,
            design=DesignOut.of(p.design),
            parameters=parameters(p.design).total,
            weights=weight_bytes(p.design),
        )
        for p in presets().values()
    ]


@router.get("/tokenizers")
def tokenizers(request: Request) -> list[TokenizerOut]:
    """The library models whose tokenizer a new model can take."""
    models = creations_of(request).library.models()
    default = vocab.default_model(models)
    found = []
    for m in models:
        tok = vocab.tokenizer_of(m)
        if tok is not None and tok.size:
            is_default = default is not None and m.name == default.name
            found.append(
                TokenizerOut(
                    model=m.name,
                    kind=tok.kind,
                    size=tok.size,
                    chat_template=tok.chat_template,
                    default=is_default,
                )
            )
    return found


@router.post("/preview")
def preview(body: PlanIn, request: Request) -> PreviewOut:
    """Parameters, memory and every problem, per field (answers in about a millisecond)."""
    plan = body.plan()
    return PreviewOut.of(plan.design, creations_of(request).preview(plan))


@router.post("/validate")
def validate(body: PlanIn, request: Request) -> PreviewOut:
    """The preview, or 400 with the problems (``param`` names the first field)."""
    plan = body.plan()
    shown = creations_of(request).preview(plan)
    if shown.problems:
        raise InvalidDesign([(p.field, p.message) for p in shown.problems])
    return PreviewOut.of(plan.design, shown)


@router.post("", status_code=202)
async def start(body: PlanIn, request: Request) -> CreationOut:
    """Check, then export as a job: `GET /api/create/jobs/{id}` follows it."""
    return CreationOut.of(await creations_of(request).start(body.plan()))


@router.get("/jobs")
def jobs(request: Request) -> list[CreationOut]:
    return [CreationOut.of(c) for c in creations_of(request).all()]


@router.get("/jobs/{job}")
def job(job: JobId, request: Request) -> CreationOut:
    return CreationOut.of(creations_of(request).get(job))


@router.delete("/jobs/{job}")
async def cancel(job: JobId, request: Request) -> CreationOut:
    """Stop a running creation; what it wrote is removed."""
    return CreationOut.of(await creations_of(request).cancel(job))
