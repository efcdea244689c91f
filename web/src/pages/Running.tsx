import { useEffect, useRef, useState } from "preact/hooks";
import { api, follow } from "../api";
import { Confirm } from "../components/Dialog";
import { size } from "../format";
import { usePolled } from "../hooks";
import { libraryChanged, message, useLibraryVersion } from "../store";

const KEEP_LINES = 2000;

/** Running models: each engine instance with its state and memory, its live log, unload. */
export function Running() {
  const [watching, setWatching] = useState<number | null>(null);
  const [unloading, setUnloading] = useState<string | null>(null);
  const [asking, setAsking] = useState<string | null>(null);
  const version = useLibraryVersion();
  const { data: instances, error, setError } = usePolled(api.instances, [version]);

  const unload = async (model: string) => {
    setAsking(null);
    setUnloading(model);
    try {
      await api.unload(model);
      libraryChanged.emit();
    } catch (e) {
      setError(message(e));
    } finally {
      setUnloading(null);
    }
  };
  const shown = watching ?? instances?.[0]?.id ?? null;

  return (
    <section class="running">
      <h1>Running models</h1>
      {error && <p class="error">{error}</p>}
      <table class="instances">
        <thead>
          <tr>
            <th>Instance</th>
            <th>Model</th>
            <th>State</th>
            <th>Worker</th>
            <th>Memory</th>
            <th>CPU</th>
            <th>PID</th>
            <th>Restarts</th>
            <th>Endpoint</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {instances?.length === 0 && (
            <tr>
              <td colSpan={10} class="muted empty-row">
                No model is loaded. Load one from the library, or send a request to a model with autoload on.
              </td>
            </tr>
          )}
          {instances?.map((i) => (
            <tr key={i.id} data-instance={i.id} class={i.id === shown ? "selected" : ""}>
              <td>#{i.id}</td>
              <td>
                {i.model}
                {i.adapter && <small class="muted block">+ {i.adapter}</small>}
              </td>
              <td>
                <span class={`status ${i.state}`}>{i.state}</span>
                {i.error && <small class="error block">{i.error}</small>}
              </td>
              <td>{i.node ?? ""}</td>
              <td>{size(i.memory)}</td>
              <td>{i.cpu_percent.toFixed(0)}%</td>
              <td>{i.pid ?? ""}</td>
              <td>{i.restarts}</td>
              <td>
                <code>{i.url ?? ""}</code>
              </td>
              <td class="actions">
                <button onClick={() => setWatching(i.id)}>Logs</button>
                <button class="danger" disabled={unloading === i.model} onClick={() => setAsking(i.model)}>
                  {unloading === i.model ? "Unloading…" : "Unload"}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {shown !== null && <LogTail key={shown} id={shown} />}
      {asking && (
        <Confirm title="Unload" confirm="Unload" onCancel={() => setAsking(null)} onConfirm={() => void unload(asking)}>
          <p>
            Unload <strong>{asking}</strong>? Requests in flight finish first.
          </p>
        </Confirm>
      )}
    </section>
  );
}

/** The last lines of an instance's log, then each new line as the engine writes it. */
function LogTail({ id }: { id: number }) {
  const [text, setText] = useState("");
  const [ended, setEnded] = useState<string | null>(null);
  const box = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const abort = new AbortController();
    setText("");
    setEnded(null);
    follow(
      `/api/instances/${id}/logs?follow=true&lines=200`,
      (chunk) =>
        setText((t) => {
          const lines = (t + chunk).split("\n");
          return lines.length > KEEP_LINES ? lines.slice(-KEEP_LINES).join("\n") : t + chunk;
        }),
      abort.signal,
    )
      .then(() => setEnded("The instance stopped."))
      .catch((e: unknown) => abort.signal.aborted || setEnded(message(e)));
    return () => abort.abort();
  }, [id]);
  useEffect(() => {
    const el = box.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 80) el.scrollTop = el.scrollHeight;
  }, [text]);
  return (
    <div class="log">
      <h2>Log of instance #{id}</h2>
      <pre ref={box} aria-label="Log">
        {text}
      </pre>
      {ended && <p class="muted">{ended}</p>}
    </div>
  );
}
