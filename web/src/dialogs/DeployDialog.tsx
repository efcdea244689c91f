import { useEffect, useState } from "preact/hooks";
import { api, type BackendInfo, type Fits, type Model } from "../api";
import { Dialog } from "../components/Dialog";
import { FileGroups, HubSearch, chosenFiles, useRepo } from "../components/HubSearch";
import { PathInput } from "../components/PathInput";
import { selectorOf } from "../format";
import { useAttempt } from "../hooks";
import { jobs, libraryChanged } from "../store";

const SOURCES = [
  { id: "hf", label: "Hugging Face" },
  { id: "modelscope", label: "ModelScope" },
  { id: "ollama", label: "Ollama library" },
  { id: "local", label: "Local path" },
  { id: "library", label: "The library" },
] as const;
type SourceId = (typeof SOURCES)[number]["id"];

/** KEY=VALUE lines; values read as JSON where they are (numbers, true, lists), else as text. */
function assignments(text: string, json: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf("=");
    if (at <= 0) throw new Error(`${line} is not KEY=VALUE`);
    const value = line.slice(at + 1).trim();
    let parsed: unknown = value;
    if (json) {
      try {
        parsed = JSON.parse(value);
      } catch {
        parsed = value;
      }
    }
    out[line.slice(0, at).trim()] = parsed;
  }
  return out;
}

/** Deploy a model in one step, laid out as the deployment manual has it: the source, a search
 * (GGUF only if asked), a file or quantization, the name and replicas, then advanced settings. */
export function DeployDialog({ onClose, onDeployed }: { onClose: () => void; onDeployed: () => void }) {
  const [source, setSource] = useState<SourceId>("hf");
  const [ggufOnly, setGgufOnly] = useState(false);
  const [path, setPath] = useState("");
  const [models, setModels] = useState<Model[]>([]);
  const [model, setModel] = useState("");
  const [name, setName] = useState("");
  const [replicas, setReplicas] = useState(1);
  const [backends, setBackends] = useState<BackendInfo[]>([]);
  const [backend, setBackend] = useState("");
  const [version, setVersion] = useState("");
  const [args, setArgs] = useState("");
  const [env, setEnv] = useState("");
  const [settings, setSettings] = useState("");
  const [restart, setRestart] = useState(true);
  const [placement, setPlacement] = useState("spread");
  const [selector, setSelector] = useState("");
  const [gpus, setGpus] = useState("");
  const [note, setNote] = useState<string | null>(null);
  const { error, busy, attempt: run } = useAttempt();
  const { repo, ref, pick, setPick, open, close } = useRepo(source, run);

  useEffect(() => {
    void api.backends().then(setBackends, () => setBackends([]));
    void api.models().then(setModels, () => setModels([]));
  }, []);
  const hub = source === "hf" || source === "modelscope" || source === "ollama";
  const versions = backends.find((b) => b.name === backend)?.versions ?? [];

  /** The deployment's fields as the form has them (not where the model comes from). */
  const fields = (): Record<string, unknown> => ({
    replicas,
    backend,
    backend_version: version || null,
    args: args.split(/\s+/).filter(Boolean),
    env: assignments(env, false),
    settings: assignments(settings, true),
    restart,
    placement,
    selector: selectorOf(selector),
    gpus: gpus.split(",").map((g) => g.trim()).filter(Boolean),
  });

  // Whether it would run, and where, checked as the form changes (a model of the library)
  const [fits, setFits] = useState<Fits | null>(null);
  const [misfit, setMisfit] = useState<string | null>(null);
  useEffect(() => {
    setFits(null);
    setMisfit(null);
    if (source !== "library" || !model) return;
    let body: Record<string, unknown>;
    try {
      body = { ...fields(), model };
    } catch (e) {
      setMisfit(String(e instanceof Error ? e.message : e));
      return;
    }
    let current = true;
    const timer = setTimeout(() => {
      api.checkDeployment(body).then(
        (found) => current && setFits(found),
        (e: unknown) => current && setMisfit(String(e instanceof Error ? e.message : e)),
      );
    }, 300);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [source, model, replicas, backend, version, args, env, settings, restart, placement, selector, gpus]);

  const deploy = () =>
    run(async () => {
      const body: Record<string, unknown> = { ...fields(), name: name.trim() || null };
      if (hub) {
        if (!repo) throw new Error("pick a model first");
        Object.assign(body, { ref, source, ...chosenFiles(repo.groups, pick) });
      } else if (source === "local") {
        if (!path.trim()) throw new Error("give the model's file or folder");
        body.path = path.trim();
      } else {
        if (!model) throw new Error("pick a model of the library");
        body.model = model;
        body.name = null;
      }
      const done = await api.deploy(body);
      if (done.download) {
        jobs.put(done.download);
        setNote(`Downloading ${done.download.repo}: it deploys when its files are in (see Downloads).`);
      } else {
        libraryChanged.emit();
        onDeployed();
      }
    });

  return (
    <Dialog
      title="Deploy a model"
      wide
      onClose={onClose}
      footer={
        <>
          <button onClick={onClose}>Cancel</button>
          <button class="primary" disabled={busy} onClick={() => void deploy()}>
            {busy ? "Deploying…" : "Deploy"}
          </button>
        </>
      }
    >
      <div class="deploy">
        <label>
          Source
          <select
            value={source}
            onChange={(e) => (setSource(e.currentTarget.value as SourceId), close())}
          >
            {SOURCES.map((s) => (
              <option key={s.id} value={s.id}>
                {s.label}
              </option>
            ))}
          </select>
        </label>
        {hub && (
          <>
            <HubSearch
              source={source}
              gguf={ggufOnly}
              current={repo?.repo ?? null}
              busy={busy}
              onOpen={(r) => void open(r)}
            >
              {source !== "ollama" && (
                <label class="check">
                  <input type="checkbox" checked={ggufOnly} onChange={(e) => setGgufOnly(e.currentTarget.checked)} />
                  GGUF
                </label>
              )}
            </HubSearch>
            {repo && (
              <FileGroups
                groups={repo.groups}
                gguf={repo.gguf}
                pick={pick}
                onPick={setPick}
                legend={repo.gguf ? "Quantization" : "Files"}
              />
            )}
          </>
        )}
        {source === "local" && (
          <label>
            Model path
            <PathInput label="Model path" value={path} onInput={setPath} placeholder="a GGUF file or a model folder" />
          </label>
        )}
        {source === "library" && (
          <label>
            Model
            <select value={model} onChange={(e) => setModel(e.currentTarget.value)}>
              <option value="">Pick one…</option>
              {models.map((m) => (
                <option key={m.name} value={m.name}>
                  {m.name}
                </option>
              ))}
            </select>
          </label>
        )}
        <div class="row">
          {source !== "library" && (
            <label>
              Name
              <input type="text" value={name} placeholder="from the source" onInput={(e) => setName(e.currentTarget.value)} />
            </label>
          )}
          <label>
            Replicas
            <input
              type="number"
              min={1}
              max={64}
              value={replicas}
              onInput={(e) => setReplicas(Math.max(1, Number(e.currentTarget.value) || 1))}
            />
          </label>
        </div>
        <details class="advanced">
          <summary>Advanced</summary>
          <div class="row">
            <label>
              Backend
              <select value={backend} onChange={(e) => (setBackend(e.currentTarget.value), setVersion(""))}>
                <option value="">Auto</option>
                {backends.map((b) => (
                  <option key={b.name} value={b.name} disabled={!b.installed}>
                    {b.name}
                    {b.installed ? "" : " (not installed)"}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Backend version
              <select value={version} onChange={(e) => setVersion(e.currentTarget.value)} disabled={!versions.length}>
                <option value="">Default build</option>
                {versions.map((v) => (
                  <option key={v} value={v}>
                    {v}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <label>
            Backend parameters
            <input
              type="text"
              value={args}
              placeholder="--flag --key=value (checked against the engine's --help)"
              onInput={(e) => setArgs(e.currentTarget.value)}
            />
          </label>
          <label>
            Environment variables
            <textarea rows={2} value={env} placeholder="NAME=value, one per line" onInput={(e) => setEnv(e.currentTarget.value)} />
          </label>
          <label>
            Settings
            <textarea rows={2} value={settings} placeholder="n_ctx=4096, one per line" onInput={(e) => setSettings(e.currentTarget.value)} />
          </label>
          <label class="check">
            <input type="checkbox" checked={restart} onChange={(e) => setRestart(e.currentTarget.checked)} />
            Restart an engine that exits
          </label>
          <div class="row">
            <label>
              Placement
              <select value={placement} onChange={(e) => setPlacement(e.currentTarget.value)}>
                <option value="spread">Spread over workers</option>
                <option value="binpack">Binpack: fill one first</option>
              </select>
            </label>
            <label>
              Worker selector
              <input type="text" value={selector} placeholder="zone=a, disk=ssd" onInput={(e) => setSelector(e.currentTarget.value)} />
            </label>
            <label>
              GPUs
              <input type="text" value={gpus} placeholder="w1:0, w1:1 (the scheduler's choice)" onInput={(e) => setGpus(e.currentTarget.value)} />
            </label>
          </div>
        </details>
        {(fits || misfit) && (
          <div class="fits" data-fits={fits ? String(fits.fits) : "error"} aria-live="polite">
            {misfit && <p class="error">Would not run: {misfit}</p>}
            {fits && (
              <>
                <p class={fits.fits ? "ok" : "error"}>
                  {fits.fits
                    ? `Would run: ${fits.replicas} instance${fits.replicas === 1 ? "" : "s"} on ${fits.backend}`
                    : `${fits.placed} of ${fits.replicas} would be placed: ${fits.reason}`}
                </p>
                <ul class="verdicts">
                  {fits.workers.map((w) => (
                    <li key={w.worker} data-worker={w.worker} class={w.fits ? "ok" : "muted"}>
                      {w.worker}: {w.fits ? `fits (${w.way})` : w.reason}
                    </li>
                  ))}
                </ul>
              </>
            )}
          </div>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        {note && <p class="ok">{note}</p>}
      </div>
    </Dialog>
  );
}
