import { useEffect, useState } from "preact/hooks";
import { api, ApiError, installsEnded, type CreatePlan, type CreatePreview, type Creation, type Preset, type TokenizerChoice } from "../api";
import { Dialog } from "../components/Dialog";
import { EngineMissing } from "./EngineMissing";
import { PathInput } from "../components/PathInput";
import { count, size } from "../format";
import { useAttempt } from "../hooks";
import { message } from "../store";

interface Props {
  onClose: () => void;
  onCreated: (models: string[]) => void;
}

type Design = CreatePreview["design"];
type NumberField = "vocab_size" | "hidden_size" | "layers" | "heads" | "kv_heads" | "ffn_size" | "context_length";

const BASIC: [NumberField, string, string][] = [
  ["vocab_size", "Vocabulary size", "10,000-100,000"],
  ["hidden_size", "Hidden size", "128-8,192"],
];
const ADVANCED: [NumberField, string, string][] = [
  ["layers", "Layers", "Transformer blocks"],
  ["heads", "Attention heads", "divide the hidden size"],
  ["kv_heads", "KV heads", "divide the attention heads"],
  ["ffn_size", "FFN size", "the feed-forward inner size"],
  ["context_length", "Context length", "tokens"],
];

/** Create a model: a preset, the basic fields, the advanced panel, the tokenizer, a live preview
 * (parameters, memory, problems on their fields), then the export with its progress. */
export function CreateDialog({ onClose, onCreated }: Props) {
  const [presets, setPresets] = useState<Preset[]>([]);
  const [preset, setPreset] = useState("small");
  const [design, setDesign] = useState<Design | null>(null);
  const [out, setOut] = useState("");
  const [name, setName] = useState("");
  const [tokenizers, setTokenizers] = useState<TokenizerChoice[]>([]);
  const [source, setSource] = useState<"model" | "train">("model");
  const [tokenizerModel, setTokenizerModel] = useState("");
  const [corpus, setCorpus] = useState("");
  const [kind, setKind] = useState<"sentencepiece" | "bpe">("sentencepiece");
  const [trainVocab, setTrainVocab] = useState(16000);
  const [gguf, setGguf] = useState<"" | "F16" | "Q8_0">("");
  const [shown, setShown] = useState<CreatePreview | null>(null);
  const [advanced, setAdvanced] = useState(false);
  const [job, setJob] = useState<Creation | null>(null);
  const { error, setError, busy, attempt } = useAttempt();

  useEffect(() => {
    Promise.all([api.presets(), api.tokenizers()])
      .then(([p, t]) => {
        setPresets(p);
        setDesign(p.find((x) => x.name === "small")?.design ?? p[0]?.design ?? null);
        setTokenizers(t);
        if (!t.length) setSource("train");
      })
      .catch((e: unknown) => setError(message(e)));
  }, []);

  const plan = (): CreatePlan => ({
    preset,
    design: design ?? {},
    out: out.trim(),
    name: name.trim() || null,
    tokenizer:
      source === "train"
        ? { corpus: corpus.trim(), kind, vocab_size: trainVocab }
        : { model: tokenizerModel || null, kind, vocab_size: trainVocab },
    gguf: gguf || null,
    seed: 0,
  });

  useEffect(() => {
    if (!design) return;
    const abort = new AbortController();
    const timer = window.setTimeout(() => {
      api
        .previewCreate(plan(), abort.signal)
        .then(setShown)
        .catch((e: unknown) => abort.signal.aborted || setError(message(e)));
    }, 60);
    return () => {
      window.clearTimeout(timer);
      abort.abort();
    };
  }, [design, out, name, source, tokenizerModel, corpus, kind, trainVocab, gguf]);

  useEffect(() => {
    if (!job || job.state !== "running") return;
    const timer = window.setInterval(() => {
      api
        .creation(job.id)
        .then((j) => {
          setJob(j);
          if (j.state === "done") onCreated(j.models);
        })
        .catch((e: unknown) => setError(message(e)));
    }, 400);
    return () => window.clearInterval(timer);
  }, [job?.id, job?.state]);

  const problem = (field: string) => shown?.problems.find((p) => p.field === field)?.message;
  const choose = (name: string) => {
    setPreset(name);
    const p = presets.find((x) => x.name === name);
    if (p) setDesign(p.design);
  };
  const change = (patch: Partial<Design>) => {
    if (!design) return;
    setDesign({ ...design, ...patch });
    setPreset("free"); // edited: the numbers are the user's now
  };
  const [installing, setInstalling] = useState<string | null>(null);
  const [missing, setMissing] = useState<ApiError | null>(null); // its environment, not installed
  const start = () =>
    attempt(async () => {
      try {
        setJob(await api.create(plan()));
      } catch (e) {
        if (e instanceof ApiError && e.code === "engine_unavailable") return setMissing(e);
        if (!(e instanceof ApiError && e.code === "engine_building")) throw e;
        // the export's environment was missing, and the server is installing it: follow, then start
        try {
          await installsEnded((j) =>
            setInstalling(`Installing ${j.backend}: ${j.stage} (${Math.round((100 * j.step) / j.steps)}%)…`),
          );
        } finally {
          setInstalling(null);
        }
        setJob(await api.create(plan()));
      }
    });
  const running = job?.state === "running";
  const field = ([key, label, help]: [NumberField, string, string]) => (
    <label key={key}>
      {label} <small class="muted">{help}</small>
      <input
        type="number"
        aria-label={label}
        value={design?.[key] ?? ""}
        onInput={(e) => change({ [key]: Number(e.currentTarget.value) } as Partial<Design>)}
      />
      <FieldError message={problem(key)} />
    </label>
  );
  const m = shown?.memory;

  return (
    <Dialog
      title="Create a model"
      drawer
      onClose={() => (running && job ? void api.cancelCreation(job.id).then(onClose) : onClose())}
      footer={
        <>
          {running && job && (
            <button onClick={() => void api.cancelCreation(job.id).then(setJob)}>Stop</button>
          )}
          <button onClick={onClose}>{job?.state === "done" ? "Close" : "Cancel"}</button>
          <button
            class="primary"
            disabled={busy || running || job?.state === "done" || !shown || shown.problems.length > 0}
            onClick={() => void start()}
          >
            {running ? "Creating…" : "Create model"}
          </button>
        </>
      }
    >
      <p class="warning">{shown?.warning ?? "A new model has random weights: for experiments and pre-training."}</p>
      {missing && <EngineMissing needs="Creating a model" error={missing} onClose={() => setMissing(null)} />}
      {installing && (
        <p class="muted" role="status">
          {installing}
        </p>
      )}
      <div class="create-summary">
      {shown && m && (
        <dl class="facts" aria-label="Preview">
          <dt>Parameters</dt>
          <dd data-testid="parameters">{shown.parameters.total.toLocaleString()} ({count(shown.parameters.total)})</dd>
          <dt>Memory</dt>
          <dd>
            {size(m.total)} {m.device === "cuda" ? "GPU" : "RAM"} at {m.n_ctx.toLocaleString()} tokens · weights {size(m.weights)}, KV cache{" "}
            {size(m.kv_cache)}, activations {size(m.compute)} · {size(m.free)} free
          </dd>
        </dl>
      )}
      {shown?.problems
        .filter((p) => ["family", "dtype", "n_ctx", "memory"].includes(p.field))
        .map((p) => (
          <p class="error" key={p.field}>
            {p.message}
          </p>
        ))}
      {job && (
        <div class="job" aria-label="Export">
          <div>
            {job.state === "running" ? `${job.stage}…` : job.state === "done" ? `Created ${job.models.join(", ")}` : job.state}
          </div>
          <progress max={1} value={job.progress} />
          {job.error && (
            <p class="error" role="alert">
              {job.error}
              {job.hint && <small> · {job.hint}</small>}
            </p>
          )}
        </div>
      )}
      </div>
      <form class="form create" onSubmit={(e) => e.preventDefault()}>
        <label>
          Preset
          <select aria-label="Preset" value={preset} onChange={(e) => choose(e.currentTarget.value)}>
            {presets.map((p) => (
              <option key={p.name} value={p.name}>
                {p.label} · {count(p.parameters)} parameters · {p.use}
              </option>
            ))}
          </select>
        </label>
        <label>
          Output folder <small class="muted">a new or empty folder on the server</small>
          <PathInput label="Output folder" value={out} onInput={setOut} folders placeholder="/home/me/models/my-model" />
          <FieldError message={problem("out")} />
        </label>
        <label>
          Name
          <input type="text" aria-label="Name" value={name} placeholder="from the folder" onInput={(e) => setName(e.currentTarget.value)} />
          <FieldError message={problem("name")} />
        </label>
        {BASIC.map(field)}
        <details
          open={advanced || ADVANCED.some(([k]) => problem(k))}
          onToggle={(e) => setAdvanced(e.currentTarget.open)}
        >
          <summary>Advanced</summary>
          {ADVANCED.map(field)}
          <label>
            Architecture
            <select aria-label="Architecture" value={design?.family ?? "llama"} onChange={(e) => change({ family: e.currentTarget.value as Design["family"] })}>
              <option value="llama">Llama</option>
              <option value="mistral">Mistral</option>
              <option value="qwen2">Qwen2</option>
              <option value="qwen3">Qwen3</option>
            </select>
          </label>
          <label>
            Weights
            <select aria-label="Weights" value={design?.dtype ?? "bfloat16"} onChange={(e) => change({ dtype: e.currentTarget.value as Design["dtype"] })}>
              <option value="bfloat16">bfloat16</option>
              <option value="float16">float16</option>
              <option value="float32">float32</option>
            </select>
          </label>
          <label class="check">
            <input
              type="checkbox"
              aria-label="Tied embeddings"
              checked={design?.tied_embeddings ?? true}
              onChange={(e) => change({ tied_embeddings: e.currentTarget.checked })}
            />
            Tied embeddings (the output layer shares the embedding)
          </label>
        </details>
        <fieldset>
          <legend>Tokenizer</legend>
          <label class="check">
            <input type="radio" name="tok" aria-label="Pretrained tokenizer" checked={source === "model"} onChange={() => setSource("model")} />
            Pretrained, from a library model
          </label>
          <label class="check">
            <input type="radio" name="tok" aria-label="Train a tokenizer" checked={source === "train"} onChange={() => setSource("train")} />
            Train one from a corpus (.txt, one sentence a line)
          </label>
          {source === "model" ? (
            <label>
              Model
              <select aria-label="Tokenizer model" value={tokenizerModel} onChange={(e) => setTokenizerModel(e.currentTarget.value)}>
                <option value="">{tokenizers.find((t) => t.default)?.model ?? "none"} (default)</option>
                {tokenizers.map((t) => (
                  <option key={t.model} value={t.model}>
                    {t.model} · {t.kind} · {t.size.toLocaleString()} tokens
                  </option>
                ))}
              </select>
            </label>
          ) : (
            <>
              <label>
                Corpus
                <PathInput label="Corpus" value={corpus} onInput={setCorpus} placeholder="/home/me/corpus.txt" />
                <FieldError message={problem("tokenizer.corpus")} />
              </label>
              <div class="row">
                <label>
                  Type
                  <select aria-label="Tokenizer type" value={kind} onChange={(e) => setKind(e.currentTarget.value as "sentencepiece" | "bpe")}>
                    <option value="sentencepiece">SentencePiece (Chinese, Japanese)</option>
                    <option value="bpe">BPE (Latin scripts)</option>
                  </select>
                </label>
                <label>
                  Tokenizer vocabulary <small class="muted">8,000-50,000</small>
                  <input type="number" aria-label="Tokenizer vocabulary" value={trainVocab} onInput={(e) => setTrainVocab(Number(e.currentTarget.value))} />
                </label>
              </div>
              <FieldError message={problem("tokenizer.vocab_size")} />
            </>
          )}
          <FieldError message={problem("tokenizer") ?? problem("tokenizer.model")} />
          {shown?.tokenizer && <small class="muted">Uses {shown.tokenizer}</small>}
        </fieldset>
        <label>
          Also write a GGUF for llama.cpp
          <select aria-label="GGUF" value={gguf} onChange={(e) => setGguf(e.currentTarget.value as "" | "F16" | "Q8_0")}>
            <option value="">no</option>
            <option value="F16">F16</option>
            <option value="Q8_0">Q8_0</option>
          </select>
          <FieldError message={problem("gguf")} />
        </label>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </Dialog>
  );
}

/** A problem the preview found, under the field it concerns. */
function FieldError({ message }: { message: string | undefined }) {
  return message ? (
    <span class="error field-error" role="alert">
      {message}
    </span>
  ) : null;
}
