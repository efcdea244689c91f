import { useEffect, useState } from "preact/hooks";
import { api, type Category, loadModel, type Model } from "../api";
import { Chat } from "../playground/Chat";
import { Images } from "../playground/Images";
import { Speech, Voice } from "../playground/Speech";
import { Classify, Embeddings, Rerank } from "../playground/Texts";
import { Caption, Faces, Upscale } from "../playground/Vision";
import { libraryChanged, message, useLibraryVersion } from "../store";

const AUTOLOAD = "modelyard.playground.autoload"; // the switch, kept in this browser

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
  // "autoload when selected": a model picked here that is not loaded is loaded at once
  const [autoload, setAutoload] = useState(() => localStorage.getItem(AUTOLOAD) === "true");
  const [loading, setLoading] = useState<string | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const switchAutoload = (on: boolean) => {
    localStorage.setItem(AUTOLOAD, String(on));
    setAutoload(on);
  };
  useEffect(() => {
    setLoadError(null);
    if (!autoload || !chosen || chosen.loaded || loading) return;
    const name = chosen.name;
    setLoading(`Loading ${name}…`);
    loadModel(name, null, false, (text) => setLoading(`Loading ${name}: ${text}…`))
      .then(() => libraryChanged.emit())
      .catch((e: unknown) => setLoadError(message(e)))
      .finally(() => setLoading(null));
  }, [autoload, chosen?.name, chosen?.loaded]);
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
        <label class="inline">
          <input type="checkbox" checked={autoload} onChange={(e) => switchAutoload(e.currentTarget.checked)} />
          Autoload when selected
        </label>
      </div>
      {loading && (
        <p class="muted" role="status">
          {loading}
        </p>
      )}
      {loadError && (
        <p class="error" role="alert">
          {loadError}
        </p>
      )}
      {chosen && !chosen.loaded && !loading && !loadError && (
        <p class="muted">
          {chosen.name} is not loaded: load it in the library, or switch on "Autoload when selected" (or the model's own
          autoload, which loads it on the first request).
        </p>
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
