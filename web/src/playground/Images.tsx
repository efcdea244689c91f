/** The playground's image generation (/v1/images/generations). */
import { useState } from "preact/hooks";
import { post } from "../api";
import { useCall } from "./common";

export function Images({ model }: { model: string }) {
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
