import { useEffect, useState } from "preact/hooks";
import { api, type Category, type Model } from "../api";
import { Chat } from "../playground/Chat";
import { Images } from "../playground/Images";
import { Speech, Voice } from "../playground/Speech";
import { Classify, Embeddings, Rerank } from "../playground/Texts";
import { Caption, Faces, Upscale } from "../playground/Vision";
import { useLibraryVersion } from "../store";

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
