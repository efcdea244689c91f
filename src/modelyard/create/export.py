"""The export, as a process in the transformers environment: `python -m modelyard.create.export
JOB.json`. It writes the tokenizer, the model (initialised as transformers initialises it,
seeded) and optionally a GGUF into the job's work folder, and reports on stdout one JSON line
per step: {"stage", "progress"}, then {"done", "parameters", "gguf"} or {"error"}."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from modelyard.create.design import Design, hf_config

# where each stage starts, in the whole job's progress (the rest is the import)
STAGES = {"tokenizer": 0.0, "model": 0.15, "save": 0.5, "gguf": 0.7, "done": 0.98}


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def stage(name: str, within: float = 0.0) -> None:
    names = list(STAGES)
    start = STAGES[name]
    end = STAGES[names[names.index(name) + 1]] if name != "done" else 1.0
    say(stage=name, progress=round(start + (end - start) * within, 4))


def run(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from modelyard.create import trainer

    work = Path(job["work"])
    design = Design(**job["design"])
    tokenizer = job["tokenizer"]
    stage("tokenizer")
    if tokenizer.get("corpus"):
        corpus, size = Path(tokenizer["corpus"]), int(tokenizer["vocab_size"])
        if tokenizer["kind"] == "sentencepiece":
            tok = trainer.train_sentencepiece(corpus, size, work)
        else:
            tok = trainer.train_bpe(corpus, size)
    else:
        tok = trainer.pretrained(Path(tokenizer["folder"]), work)
    if len(tok) > design.vocab_size:
        raise ValueError(f"the tokenizer has {len(tok)} tokens; the vocabulary size must be at least that")
    tok.save_pretrained(str(work))
    ends = trainer.end_ids(tok)

    stage("model")
    values = hf_config(design, bos=tok.bos_token_id, eos=ends, pad=tok.pad_token_id)
    model_type = values.pop("model_type")
    values.pop("architectures")
    config = AutoConfig.for_model(model_type, **values)
    torch.manual_seed(int(job["seed"]))
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, design.dtype))  # type: ignore[no-untyped-call]
    count = sum(p.numel() for p in model.parameters())
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=tok.bos_token_id, eos_token_id=ends, pad_token_id=tok.pad_token_id
    )
    stage("save")
    model.save_pretrained(str(work))
    gguf_file = None
    if job.get("gguf"):
        from modelyard.create import to_gguf

        stage("gguf")
        gguf_file = work / to_gguf.gguf_name(job["name"], job["gguf"])
        special = to_gguf.SpecialTokens(
            bos=tok.bos_token_id,
            eos=ends[0] if ends else None,
            unk=tok.unk_token_id,
            pad=tok.pad_token_id,
            add_bos=bool(getattr(tok, "add_bos_token", False)),
            chat_template=tok.chat_template,
        )
        to_gguf.write(
            gguf_file,
            job["name"],
            design,
            list(model.state_dict().items()),
            to_gguf.vocabulary(work),
            special,
            job["gguf"],
            lambda within: stage("gguf", within),
        )
    stage("done")
    return {"parameters": count, "tokens": len(tok), "gguf": str(gguf_file) if gguf_file else None}


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    try:
        result = run(job)
    except ImportError as e:
        traceback.print_exc()
        say(
            error=f"{e.name or e} is missing from {sys.prefix}: `modelyard backends install transformers` adds it"
        )
        sys.exit(1)
    except Exception as e:  # reported to the job, with the trace in its log
        traceback.print_exc()
        say(error=f"{e.__class__.__name__}: {e}")
        sys.exit(1)
    say(done=True, **result)


if __name__ == "__main__":
    main()
