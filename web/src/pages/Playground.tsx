import { useEffect, useRef, useState } from "preact/hooks";
import { api, authorised, type Category, failure, get, type Model, post, postForm, streamChat } from "../api";
import { useAttempt } from "../hooks";
import { message, useLibraryVersion } from "../store";

const MODES = {
  chat: "Chat",
  embeddings: "Embeddings",
  rerank: "Rerank",
  classify: "Classify",
  images: "Images",
  speech: "Speech to text",
  voice: "Text to speech",
  caption: "Caption",
  upscale: "Upscale",
  faces: "Faces",
} as const;
type Mode = keyof typeof MODES;
const CATEGORIES_OF: Record<Mode, Category[]> = {
  chat: ["chat", "multimodal"],
  embeddings: ["embedding"],
  rerank: ["rerank"],
  classify: ["classification"],
  images: ["image"],
  speech: ["speech-to-text"],
  voice: ["text-to-speech"],
  caption: ["captioning"],
  upscale: ["upscale"],
  faces: ["face"],
};

/** Try a model: streaming chat, embeddings, rerank, classification, image generation, speech to
 * text, text to speech, captions, upscaling, faces, all through /v1. */
export function Playground() {
  const [mode, setMode] = useState<Mode>("chat");
  const [models, setModels] = useState<Model[]>([]);
  const [model, setModel] = useState("");
  const [adapters, setAdapters] = useState<Record<string, string>>({}); // loaded with a LoRA
  const version = useLibraryVersion();
  useEffect(() => {
    api
      .models()
      .then((all) => setModels(all))
      .catch(() => setModels([]));
    api
      .instances()
      .then((list) => setAdapters(Object.fromEntries(list.filter((i) => i.adapter).map((i) => [i.model, i.adapter!]))))
      .catch(() => setAdapters({}));
  }, [version]);
  const fitting = models.filter((m) => CATEGORIES_OF[mode].includes(m.category));
  useEffect(() => {
    if (!fitting.some((m) => m.name === model)) setModel(fitting.find((m) => m.loaded)?.name ?? fitting[0]?.name ?? "");
  }, [mode, models]);
  const chosen = fitting.find((m) => m.name === model);
  // the gateway's name for what is loaded: base:adapter when a LoRA is on
  const target = model && adapters[model] ? `${model}:${adapters[model]}` : model;

  return (
    <section class="playground">
      <div class="tabs" role="tablist">
        {(Object.keys(MODES) as Mode[]).map((m) => (
          <button key={m} role="tab" aria-selected={m === mode} class={m === mode ? "current" : ""} onClick={() => setMode(m)}>
            {MODES[m]}
          </button>
        ))}
        <span class="spacer" />
        <label class="inline">
          Model
          <select aria-label="Model" value={model} onChange={(e) => setModel(e.currentTarget.value)}>
            {fitting.length === 0 && <option value="">no {CATEGORIES_OF[mode][0]} model in the library</option>}
            {fitting.map((m) => (
              <option key={m.name} value={m.name}>
                {m.name}
                {m.loaded ? (adapters[m.name] ? ` + ${adapters[m.name]}` : "") : " (not loaded)"}
              </option>
            ))}
          </select>
        </label>
      </div>
      {chosen && !chosen.loaded && (
        <p class="muted">{chosen.name} is not loaded: load it in the library (or the first request loads it when autoload is on).</p>
      )}
      {mode === "chat" && <Chat model={target} />}
      {mode === "embeddings" && <Embeddings model={target} />}
      {mode === "rerank" && <Rerank model={target} />}
      {mode === "classify" && <Classify model={target} />}
      {mode === "images" && <Images model={target} />}
      {mode === "speech" && <Speech model={target} />}
      {mode === "voice" && <Voice model={target} />}
      {mode === "caption" && <Caption model={target} />}
      {mode === "upscale" && <Upscale model={target} />}
      {mode === "faces" && <Faces model={target} />}
    </section>
  );
}

interface Message {
  role: "user" | "assistant";
  content: string;
}

function Chat({ model }: { model: string }) {
  const [system, setSystem] = useState("You are a helpful assistant.");
  const [temperature, setTemperature] = useState(0.7);
  const [topP, setTopP] = useState(0.95);
  const [maxTokens, setMaxTokens] = useState(256);
  const [seed, setSeed] = useState("");
  const [messages, setMessages] = useState<Message[]>([]);
  const [draft, setDraft] = useState("");
  const [stats, setStats] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const running = useRef<AbortController | null>(null);
  const [busy, setBusy] = useState(false);

  const send = async () => {
    const text = draft.trim();
    if (!text || !model || busy) return;
    const history: Message[] = [...messages, { role: "user", content: text }];
    setMessages([...history, { role: "assistant", content: "" }]);
    setDraft("");
    setError(null);
    setStats(null);
    setBusy(true);
    const abort = new AbortController();
    running.current = abort;
    const started = performance.now();
    let reply = "";
    let tokens = 0;
    try {
      await streamChat(
        {
          model,
          messages: [...(system.trim() ? [{ role: "system", content: system }] : []), ...history],
          temperature,
          top_p: topP,
          max_tokens: maxTokens,
          ...(seed ? { seed: Number(seed) } : {}),
        },
        (chunk) => {
          const choices = chunk.choices as { delta?: { content?: string } }[] | undefined;
          const piece = choices?.[0]?.delta?.content ?? "";
          if (!piece) return;
          tokens += 1;
          reply += piece;
          setMessages([...history, { role: "assistant", content: reply }]);
        },
        abort.signal,
      );
      const seconds = (performance.now() - started) / 1000;
      setStats(`${tokens} chunks in ${seconds.toFixed(1)} s`);
    } catch (e) {
      if (!abort.signal.aborted) setError(message(e));
      if (!reply) setMessages(history);
    } finally {
      setBusy(false);
      running.current = null;
    }
  };

  return (
    <div class="chat">
      <aside class="params" aria-label="Chat settings">
        <label>
          System prompt
          <textarea aria-label="System prompt" rows={4} value={system} onInput={(e) => setSystem(e.currentTarget.value)} />
        </label>
        <label>
          Temperature <output>{temperature}</output>
          <input type="range" aria-label="Temperature" min={0} max={2} step={0.05} value={temperature} onInput={(e) => setTemperature(Number(e.currentTarget.value))} />
        </label>
        <label>
          Top P <output>{topP}</output>
          <input type="range" aria-label="Top P" min={0} max={1} step={0.01} value={topP} onInput={(e) => setTopP(Number(e.currentTarget.value))} />
        </label>
        <label>
          Max tokens
          <input type="number" aria-label="Max tokens" min={1} value={maxTokens} onInput={(e) => setMaxTokens(Number(e.currentTarget.value))} />
        </label>
        <label>
          Seed
          <input type="number" aria-label="Seed" value={seed} placeholder="random" onInput={(e) => setSeed(e.currentTarget.value)} />
        </label>
        <button onClick={() => (setMessages([]), setStats(null))} disabled={busy}>
          Clear the conversation
        </button>
      </aside>
      <div class="conversation">
        <div class="messages" aria-live="polite">
          {messages.length === 0 && <p class="muted">Say something to {model || "a model"}.</p>}
          {messages.map((m, i) => (
            <div key={i} class={`message ${m.role}`} data-role={m.role}>
              {m.content || (busy && i === messages.length - 1 ? "…" : "")}
            </div>
          ))}
        </div>
        {error && <p class="error">{error}</p>}
        {stats && <p class="muted">{stats}</p>}
        <form
          class="composer"
          onSubmit={(e) => {
            e.preventDefault();
            void send();
          }}
        >
          <textarea
            aria-label="Message"
            rows={2}
            value={draft}
            placeholder="Enter sends, Shift+Enter starts a new line"
            onInput={(e) => setDraft(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                void send();
              }
            }}
          />
          {busy ? (
            <button type="button" onClick={() => running.current?.abort()}>
              Stop
            </button>
          ) : (
            <button type="submit" class="primary" disabled={!model || !draft.trim()}>
              Send
            </button>
          )}
        </form>
      </div>
    </div>
  );
}

/** An attempt that keeps its result. */
function useCall<T>() {
  const [result, setResult] = useState<T | null>(null);
  const { error, busy, attempt } = useAttempt();
  const call = (f: () => Promise<T>) => attempt(async () => setResult(await f()));
  return { result, error, busy, call };
}

/** The non-empty lines of a text. */
const lines = (text: string) => text.split("\n").map((s) => s.trim()).filter(Boolean);

interface TextsFormProps {
  text: string;
  onText: (text: string) => void;
  action: string;
  doing: string;
  ready: boolean;
  busy: boolean;
  error: string | null;
  onRun: () => Promise<void>;
}

/** Texts, one per line, the button that sends them, and what went wrong. */
function TextsForm({ text, onText, action, doing, ready, busy, error, onRun }: TextsFormProps) {
  return (
    <>
      <label>
        Texts, one per line
        <textarea aria-label="Texts" rows={5} value={text} onInput={(e) => onText(e.currentTarget.value)} />
      </label>
      <button class="primary" disabled={!ready || busy} onClick={() => void onRun()}>
        {busy ? doing : action}
      </button>
      {error && <p class="error">{error}</p>}
    </>
  );
}

function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / (Math.sqrt(na * nb) || 1);
}

function Embeddings({ model }: { model: string }) {
  const [text, setText] = useState("The cat sits on the mat.\nA kitten rests on a rug.\nStock prices fell today.");
  const { result, error, busy, call } = useCall<{ inputs: string[]; vectors: number[][]; tokens: number }>();
  const run = () =>
    call(async () => {
      const inputs = lines(text);
      const res = await post<{ data: { embedding: number[] }[]; usage: { prompt_tokens: number } }>("/v1/embeddings", {
        model,
        input: inputs,
      });
      return { inputs, vectors: res.data.map((d) => d.embedding), tokens: res.usage?.prompt_tokens ?? 0 };
    });
  return (
    <div class="tool">
      <TextsForm text={text} onText={setText} action="Embed" doing="Embedding…" ready={!!model} busy={busy} error={error} onRun={run} />
      {result && (
        <div class="result" aria-label="Embeddings">
          <p>
            {result.vectors.length} vectors of <strong data-testid="dimensions">{result.vectors[0]?.length ?? 0}</strong> dimensions ·{" "}
            {result.tokens} tokens
          </p>
          <table class="similarity">
            <caption>Cosine similarity</caption>
            <tbody>
              {result.vectors.map((a, i) => (
                <tr key={i}>
                  <th title={result.inputs[i]}>{result.inputs[i].slice(0, 32)}</th>
                  {result.vectors.map((b, j) => {
                    const s = cosine(a, b);
                    return (
                      <td key={j} style={{ background: `rgba(37, 99, 235, ${Math.max(0, s) * 0.35})` }}>
                        {s.toFixed(3)}
                      </td>
                    );
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

interface Ranked {
  index: number;
  relevance_score: number;
  document?: { text: string } | string;
}

function Rerank({ model }: { model: string }) {
  const [query, setQuery] = useState("Where do cats sleep?");
  const [docs, setDocs] = useState("Cats often sleep on warm windowsills.\nThe stock market closed higher.\nKittens nap in cardboard boxes.");
  const { result, error, busy, call } = useCall<{ docs: string[]; results: Ranked[] }>();
  const run = () =>
    call(async () => {
      const documents = lines(docs);
      const res = await post<{ results: Ranked[] }>("/v1/rerank", { model, query, documents });
      return { docs: documents, results: res.results };
    });
  return (
    <div class="tool">
      <label>
        Query
        <input type="text" aria-label="Query" value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
      </label>
      <label>
        Documents, one per line
        <textarea aria-label="Documents" rows={5} value={docs} onInput={(e) => setDocs(e.currentTarget.value)} />
      </label>
      <button class="primary" disabled={!model || busy} onClick={() => void run()}>
        {busy ? "Ranking…" : "Rerank"}
      </button>
      {error && <p class="error">{error}</p>}
      {result && (
        <ol class="ranked" aria-label="Ranked documents">
          {result.results.map((r) => (
            <li key={r.index}>
              <span class="score">{r.relevance_score.toFixed(4)}</span>
              <span class="document">{result.docs[r.index]}</span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

interface Labelled {
  index: number;
  label: string;
  score: number;
}

function Classify({ model }: { model: string }) {
  const [text, setText] = useState("What a wonderful day.\nThis is the worst film I have seen.");
  const { result, error, busy, call } = useCall<{ inputs: string[]; data: Labelled[] }>();
  const run = () =>
    call(async () => {
      const inputs = lines(text);
      const res = await post<{ data: Labelled[] }>("/v1/classify", { model, input: inputs });
      return { inputs, data: res.data };
    });
  return (
    <div class="tool">
      <TextsForm text={text} onText={setText} action="Classify" doing="Classifying…" ready={!!model} busy={busy} error={error} onRun={run} />
      {result && (
        <table class="labels" aria-label="Labels">
          <thead>
            <tr>
              <th>Text</th>
              <th>Label</th>
              <th>Score</th>
            </tr>
          </thead>
          <tbody>
            {result.data.map((d) => (
              <tr key={d.index}>
                <td>{result.inputs[d.index]}</td>
                <td class="label">{d.label}</td>
                <td class="score">{d.score.toFixed(4)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function Images({ model }: { model: string }) {
  const [prompt, setPrompt] = useState("a lighthouse at dusk, oil painting");
  const [negative, setNegative] = useState("");
  const [width, setWidth] = useState(512);
  const [height, setHeight] = useState(512);
  const [steps, setSteps] = useState(20);
  const [seed, setSeed] = useState("");
  const { result, error, busy, call } = useCall<{ src: string; seconds: number }>();
  const run = () =>
    call(async () => {
      const started = performance.now();
      const res = await post<{ data: { b64_json: string }[] }>("/v1/images/generations", {
        model,
        prompt,
        ...(negative ? { negative_prompt: negative } : {}),
        size: `${width}x${height}`,
        steps,
        ...(seed ? { seed: Number(seed) } : {}),
        response_format: "b64_json",
      });
      return { src: `data:image/png;base64,${res.data[0].b64_json}`, seconds: (performance.now() - started) / 1000 };
    });
  return (
    <div class="tool images">
      <label>
        Prompt
        <textarea aria-label="Prompt" rows={3} value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} />
      </label>
      <label>
        Negative prompt
        <input type="text" aria-label="Negative prompt" value={negative} onInput={(e) => setNegative(e.currentTarget.value)} />
      </label>
      <div class="row">
        <label>
          Width
          <input type="number" aria-label="Width" min={8} step={8} value={width} onInput={(e) => setWidth(Number(e.currentTarget.value))} />
        </label>
        <label>
          Height
          <input type="number" aria-label="Height" min={8} step={8} value={height} onInput={(e) => setHeight(Number(e.currentTarget.value))} />
        </label>
        <label>
          Steps
          <input type="number" aria-label="Steps" min={1} value={steps} onInput={(e) => setSteps(Number(e.currentTarget.value))} />
        </label>
        <label>
          Seed
          <input type="number" aria-label="Seed" value={seed} placeholder="random" onInput={(e) => setSeed(e.currentTarget.value)} />
        </label>
      </div>
      <button class="primary" disabled={!model || busy || !prompt.trim()} onClick={() => void run()}>
        {busy ? "Generating…" : "Generate"}
      </button>
      {error && <p class="error">{error}</p>}
      {result && (
        <figure>
          <img src={result.src} alt={prompt} />
          <figcaption class="muted">{result.seconds.toFixed(1)} s</figcaption>
        </figure>
      )}
    </div>
  );
}

interface Segment {
  id: number;
  start: number;
  end: number;
  text: string;
}

interface Heard {
  text: string;
  language: string;
  duration: number;
  segments?: Segment[];
}

/** A recording (any type the browser records: webm, ogg) as a 16-bit mono WAV, which every
 * speech model's engine reads. */
async function wavOf(blob: Blob): Promise<Blob> {
  const context = new AudioContext();
  try {
    const audio = await context.decodeAudioData(await blob.arrayBuffer());
    const mono = new Float32Array(audio.length);
    for (let c = 0; c < audio.numberOfChannels; c++) {
      const channel = audio.getChannelData(c);
      for (let i = 0; i < audio.length; i++) mono[i] += channel[i] / audio.numberOfChannels;
    }
    const data = new DataView(new ArrayBuffer(44 + mono.length * 2));
    const text = (at: number, s: string) => [...s].forEach((ch, i) => data.setUint8(at + i, ch.charCodeAt(0)));
    text(0, "RIFF");
    data.setUint32(4, 36 + mono.length * 2, true);
    text(8, "WAVEfmt ");
    data.setUint32(16, 16, true);
    data.setUint16(20, 1, true); // PCM
    data.setUint16(22, 1, true); // one channel
    data.setUint32(24, audio.sampleRate, true);
    data.setUint32(28, audio.sampleRate * 2, true);
    data.setUint16(32, 2, true);
    data.setUint16(34, 16, true);
    text(36, "data");
    data.setUint32(40, mono.length * 2, true);
    mono.forEach((v, i) => data.setInt16(44 + i * 2, Math.max(-1, Math.min(1, v)) * 0x7fff, true));
    return new Blob([data.buffer], { type: "audio/wav" });
  } finally {
    void context.close();
  }
}

const seconds = (s: number) => `${Math.floor(s / 60)}:${(s % 60).toFixed(2).padStart(5, "0")}`;

function Speech({ model }: { model: string }) {
  const [audio, setAudio] = useState<{ blob: Blob; name: string; url: string } | null>(null);
  const [translate, setTranslate] = useState(false);
  const [language, setLanguage] = useState("");
  const [recorder, setRecorder] = useState<MediaRecorder | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const { result, error, busy, call } = useCall<Heard>();
  const choose = (blob: Blob, name: string) => {
    if (audio) URL.revokeObjectURL(audio.url);
    setAudio({ blob, name, url: URL.createObjectURL(blob) });
  };
  const record = async () => {
    setProblem(null);
    if (recorder) {
      recorder.stop();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const taken = new MediaRecorder(stream);
      const parts: Blob[] = [];
      taken.ondataavailable = (e) => parts.push(e.data);
      taken.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        setRecorder(null);
        wavOf(new Blob(parts, { type: taken.mimeType }))
          .then((wav) => choose(wav, "recording.wav"))
          .catch((e: unknown) => setProblem(`the recording could not be read: ${String(e)}`));
      };
      taken.start();
      setRecorder(taken);
    } catch (e) {
      setProblem(`no microphone: ${String(e)}`);
    }
  };
  const run = () =>
    call(async () => {
      const form = new FormData();
      form.append("model", model);
      form.append("file", audio!.blob, audio!.name);
      form.append("response_format", "verbose_json");
      form.append("timestamp_granularities[]", "segment");
      if (language && !translate) form.append("language", language);
      return postForm<Heard>(`/v1/audio/${translate ? "translations" : "transcriptions"}`, form);
    });
  return (
    <div class="tool speech">
      <div class="row">
        <label>
          Audio file
          <input
            type="file"
            aria-label="Audio file"
            accept="audio/*"
            onChange={(e) => {
              const f = e.currentTarget.files?.[0];
              if (f) choose(f, f.name);
            }}
          />
        </label>
        <button onClick={() => void record()}>{recorder ? "Stop recording" : "Record"}</button>
      </div>
      {audio && <audio controls src={audio.url} aria-label="Input audio" />}
      <div class="row">
        <label>
          Language
          <input
            type="text"
            aria-label="Language"
            placeholder="detect (e.g. en)"
            value={language}
            disabled={translate}
            onInput={(e) => setLanguage(e.currentTarget.value.trim())}
          />
        </label>
        <label class="inline">
          <input type="checkbox" aria-label="Translate to English" checked={translate} onChange={(e) => setTranslate(e.currentTarget.checked)} />
          Translate to English
        </label>
      </div>
      <button class="primary" disabled={!model || busy || !audio} onClick={() => void run()}>
        {busy ? "Listening…" : translate ? "Translate" : "Transcribe"}
      </button>
      {(problem || error) && <p class="error">{problem ?? error}</p>}
      {result && (
        <div class="heard">
          <p data-testid="transcript">{result.text}</p>
          <p class="muted">
            {result.language || "language unknown"}, {result.duration.toFixed(1)} s
          </p>
          <table aria-label="Segments">
            <tbody>
              {(result.segments ?? []).map((s) => (
                <tr key={s.id}>
                  <td class="time">
                    {seconds(s.start)} – {seconds(s.end)}
                  </td>
                  <td>{s.text}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function Voice({ model }: { model: string }) {
  const [text, setText] = useState("The lighthouse keeper lit the lamp for the ships at sea.");
  const [voice, setVoice] = useState("");
  const [voices, setVoices] = useState<string[]>([]);
  useEffect(() => {
    setVoices([]);
    if (!model) return;
    get<{ voices: string[] }>(`/v1/audio/voices?model=${encodeURIComponent(model)}`)
      .then((r) => {
        setVoices(r.voices);
        setVoice((v) => (r.voices.includes(v) ? v : (r.voices[0] ?? "")));
      })
      .catch(() => setVoices([])); // not loaded yet: any name, the engine says which it has
  }, [model]);
  const [speed, setSpeed] = useState(1);
  const { result, error, busy, call } = useCall<{ url: string; bytes: number }>();
  const run = () =>
    call(async () => {
      const res = await fetch("/v1/audio/speech", {
        method: "POST",
        headers: authorised({ "Content-Type": "application/json" }),
        body: JSON.stringify({ model, input: text, voice: voice || "default", speed, response_format: "wav" }),
      });
      if (!res.ok) throw await failure(res);
      const blob = await res.blob();
      if (result) URL.revokeObjectURL(result.url);
      return { url: URL.createObjectURL(blob), bytes: blob.size };
    });
  return (
    <div class="tool voice">
      <label>
        Text
        <textarea aria-label="Text" rows={3} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      </label>
      <div class="row">
        <label>
          Voice
          {voices.length ? (
            <select aria-label="Voice" value={voice} onChange={(e) => setVoice(e.currentTarget.value)}>
              {voices.map((v) => (
                <option key={v} value={v}>
                  {v}
                </option>
              ))}
            </select>
          ) : (
            <input type="text" aria-label="Voice" value={voice} placeholder="default" onInput={(e) => setVoice(e.currentTarget.value.trim())} />
          )}
        </label>
        <label>
          Speed
          <input type="number" aria-label="Speed" min={0.25} max={4} step={0.25} value={speed} onInput={(e) => setSpeed(Number(e.currentTarget.value))} />
        </label>
      </div>
      <button class="primary" disabled={!model || busy || !text.trim()} onClick={() => void run()}>
        {busy ? "Speaking…" : "Speak"}
      </button>
      {error && <p class="error">{error}</p>}
      {result && <audio controls autoplay src={result.url} aria-label="Speech" data-bytes={result.bytes} />}
    </div>
  );
}

/** An image picked from the disk, as a data URL (what the image routes take). */
function useImage() {
  const [image, setImage] = useState<{ url: string; name: string; width: number; height: number } | null>(null);
  const pick = (file: File) => {
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      const probe = new Image();
      probe.onload = () => setImage({ url, name: file.name, width: probe.naturalWidth, height: probe.naturalHeight });
      probe.src = url;
    };
    reader.readAsDataURL(file);
  };
  const input = (
    <label>
      Image
      <input
        type="file"
        aria-label="Image file"
        accept="image/*"
        onChange={(e) => {
          const f = e.currentTarget.files?.[0];
          if (f) pick(f);
        }}
      />
    </label>
  );
  return { image, input };
}

function Caption({ model }: { model: string }) {
  const { image, input } = useImage();
  const [prompt, setPrompt] = useState("");
  const [maxTokens, setMaxTokens] = useState(32);
  const { result, error, busy, call } = useCall<{ caption: string; tokens: number; seconds: number }>();
  const run = () =>
    call(async () => {
      const started = performance.now();
      const res = await post<{ data: { caption: string }[]; usage: { completion_tokens: number } }>("/v1/images/captions", {
        model,
        image: image!.url,
        max_tokens: maxTokens,
        ...(prompt.trim() ? { prompt: prompt.trim() } : {}),
      });
      return { caption: res.data[0].caption, tokens: res.usage.completion_tokens, seconds: (performance.now() - started) / 1000 };
    });
  return (
    <div class="tool caption">
      <div class="row">
        {input}
        <label>
          Max tokens
          <input type="number" aria-label="Max tokens" min={1} max={512} value={maxTokens} onInput={(e) => setMaxTokens(Number(e.currentTarget.value))} />
        </label>
      </div>
      <label>
        Start of the caption
        <input type="text" aria-label="Start of the caption" placeholder="optional, e.g. a photograph of" value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} />
      </label>
      {image && <img class="picked" src={image.url} alt={image.name} />}
      <button class="primary" disabled={!model || busy || !image} onClick={() => void run()}>
        {busy ? "Looking…" : "Caption"}
      </button>
      {error && <p class="error">{error}</p>}
      {result && (
        <div class="said">
          <p data-testid="caption">{result.caption}</p>
          <p class="muted">
            {result.tokens} tokens in {result.seconds.toFixed(1)} s
          </p>
        </div>
      )}
    </div>
  );
}

function Upscale({ model }: { model: string }) {
  const { image, input } = useImage();
  const [scale, setScale] = useState("");
  const [tile, setTile] = useState("");
  const [split, setSplit] = useState(50);
  const { result, error, busy, call } = useCall<{ src: string; width: number; height: number; seconds: number }>();
  const run = () =>
    call(async () => {
      const started = performance.now();
      const res = await post<{ data: { b64_json: string; width: number; height: number }[] }>("/v1/images/upscale", {
        model,
        image: image!.url,
        ...(scale ? { scale: Number(scale) } : {}),
        ...(tile ? { tile_size: Number(tile) } : {}),
      });
      const out = res.data[0];
      return { src: `data:image/png;base64,${out.b64_json}`, width: out.width, height: out.height, seconds: (performance.now() - started) / 1000 };
    });
  return (
    <div class="tool upscale">
      <div class="row">
        {input}
        <label>
          Scale
          <input type="number" aria-label="Scale" min={1} max={8} step={0.5} placeholder="the model's" value={scale} onInput={(e) => setScale(e.currentTarget.value)} />
        </label>
        <label>
          Tile size
          <input type="number" aria-label="Tile size" min={0} step={64} placeholder="the setting's" value={tile} onInput={(e) => setTile(e.currentTarget.value)} />
        </label>
      </div>
      <button class="primary" disabled={!model || busy || !image} onClick={() => void run()}>
        {busy ? "Upscaling…" : "Upscale"}
      </button>
      {error && <p class="error">{error}</p>}
      {image && !result && <img class="picked" src={image.url} alt={image.name} />}
      {image && result && (
        <figure class="compare" aria-label="Before and after">
          <div class="frame" style={{ aspectRatio: `${result.width} / ${result.height}` }}>
            <img class="after" src={result.src} alt="after" />
            <img class="before" src={image.url} alt="before" style={{ clipPath: `inset(0 ${100 - split}% 0 0)` }} />
          </div>
          <input type="range" aria-label="Before and after" min={0} max={100} value={split} onInput={(e) => setSplit(Number(e.currentTarget.value))} />
          <figcaption class="muted" data-testid="sizes">
            before {image.width}x{image.height}, after {result.width}x{result.height} · {result.seconds.toFixed(1)} s
          </figcaption>
        </figure>
      )}
    </div>
  );
}

interface Face {
  image: number;
  bbox: number[];
  score: number;
  embedding: number[];
}

function Faces({ model }: { model: string }) {
  const { image, input } = useImage();
  const { result, error, busy, call } = useCall<Face[]>();
  const run = () =>
    call(async () => (await post<{ data: Face[] }>("/v1/embeddings", { model, input: image!.url, encoding_format: "float" })).data);
  return (
    <div class="tool faces">
      {input}
      <button class="primary" disabled={!model || busy || !image} onClick={() => void run()}>
        {busy ? "Looking…" : "Find faces"}
      </button>
      {error && <p class="error">{error}</p>}
      {image && (
        <div class="found">
          <svg viewBox={`0 0 ${image.width} ${image.height}`} aria-label="Faces found">
            <image href={image.url} width={image.width} height={image.height} />
            {(result ?? []).map((f, i) => (
              <g key={i} class="face">
                <rect x={f.bbox[0]} y={f.bbox[1]} width={f.bbox[2] - f.bbox[0]} height={f.bbox[3] - f.bbox[1]} />
                <text x={f.bbox[0] + 4} y={f.bbox[1] + 16}>
                  {i + 1}
                </text>
              </g>
            ))}
          </svg>
        </div>
      )}
      {result && (
        <table aria-label="Faces">
          <thead>
            <tr>
              <th>Face</th>
              <th>Box</th>
              <th>Score</th>
              <th>Vector</th>
            </tr>
          </thead>
          <tbody>
            {result.map((f, i) => (
              <tr key={i}>
                <td>{i + 1}</td>
                <td>{f.bbox.map((v) => Math.round(v)).join(", ")}</td>
                <td>{f.score.toFixed(3)}</td>
                <td>{f.embedding.length} numbers</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {result && result.length === 0 && <p class="muted">No face found.</p>}
    </div>
  );
}
