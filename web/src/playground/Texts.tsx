/** The playground's text modes: embeddings (with their similarities), rerank, classification. */
import { useState } from "preact/hooks";
import { type ClassifyAnswer, post, type RerankAnswer } from "../api";
import { lines, TextsForm, useCall } from "./common";

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

export function Embeddings({ model }: { model: string }) {
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

export function Rerank({ model }: { model: string }) {
  const [query, setQuery] = useState("Where do cats sleep?");
  const [docs, setDocs] = useState("Cats often sleep on warm windowsills.\nThe stock market closed higher.\nKittens nap in cardboard boxes.");
  const { result, error, busy, call } = useCall<{ docs: string[]; results: RerankAnswer["results"] }>();
  const run = () =>
    call(async () => {
      const documents = lines(docs);
      const res = await post<RerankAnswer>("/v1/rerank", { model, query, documents });
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

export function Classify({ model }: { model: string }) {
  const [text, setText] = useState("What a wonderful day.\nThis is the worst film I have seen.");
  const { result, error, busy, call } = useCall<{ inputs: string[]; data: ClassifyAnswer["data"] }>();
  const run = () =>
    call(async () => {
      const inputs = lines(text);
      const res = await post<ClassifyAnswer>("/v1/classify", { model, input: inputs });
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
