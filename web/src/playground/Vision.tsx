/** The playground's image-reading modes: captions, upscaling, faces. */
import { useState } from "preact/hooks";
import { type CaptionAnswer, type FaceAnswer, post } from "../api";
import { useCall } from "./common";
import { useImage } from "./image";

export function Caption({ model }: { model: string }) {
  const { image, input } = useImage();
  const [prompt, setPrompt] = useState("");
  const [maxTokens, setMaxTokens] = useState(32);
  const { result, error, busy, call } = useCall<{ caption: string; tokens: number; seconds: number }>();
  const run = () =>
    call(async () => {
      const started = performance.now();
      const res = await post<CaptionAnswer>("/v1/images/captions", {
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

export function Upscale({ model }: { model: string }) {
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

export function Faces({ model }: { model: string }) {
  const { image, input } = useImage();
  const { result, error, busy, call } = useCall<FaceAnswer["data"]>();
  const run = () =>
    call(async () => (await post<FaceAnswer>("/v1/embeddings", { model, input: image!.url, encoding_format: "float" })).data);
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
