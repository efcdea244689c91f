import { useState } from "preact/hooks";
import { api, type Job } from "../api";
import { CategorySelect } from "../components/CategorySelect";
import { Dialog } from "../components/Dialog";
import { ALL, FileGroups, HubSearch, chosenFiles, useRepo } from "../components/HubSearch";
import { PathInput } from "../components/PathInput";
import { duration, percent, size } from "../format";
import { useAttempt } from "../hooks";
import { ACTIVE, jobs, useJobs } from "../store";

const SOURCES = [
  { id: "hf", label: "Hugging Face" },
  { id: "modelscope", label: "ModelScope" },
  { id: "ollama", label: "Ollama" },
] as const;

/** The downloader: search a hub, look at a repo, pick a quantization or files, follow the jobs. */
export function DownloadDialog({ onClose, hidden }: { onClose: () => void; hidden: boolean }) {
  const [source, setSource] = useState<string>("hf");
  const [category, setCategory] = useState<string>("");
  const [name, setName] = useState("");
  const [directory, setDirectory] = useState("");
  const { error, busy, attempt: run } = useAttempt();
  const { repo, ref, pick, setPick, open, close } = useRepo(source, run);
  const list = useJobs();
  if (hidden) return null;

  const start = () =>
    run(async () => {
      if (!repo) return;
      const job = await api.pull({
        ref,
        source,
        ...chosenFiles(repo.groups, pick),
        name: name.trim() || null,
        directory: directory.trim() || null,
      });
      jobs.put(job);
    });
  const paired = (g: { name: string }) => repo?.gguf && pick !== "other" && g.name === "mmproj";
  const chosen = repo?.groups.filter((g) => pick === ALL || g.name === pick || paired(g)) ?? [];

  return (
    <Dialog
      title="Download a model"
      wide
      onClose={onClose}
      extra={
        <button class="icon" aria-label="Minimise" title="Minimise: the downloads go on" onClick={onClose}>
          _
        </button>
      }
    >
      <div class="download">
        <section class="finder">
          <div class="row">
            <label>
              Source
              <select value={source} onChange={(e) => (setSource(e.currentTarget.value), close())}>
                {SOURCES.map((s) => (
                  <option key={s.id} value={s.id}>
                    {s.label}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Category
              <CategorySelect value={category} onChange={setCategory} empty="Any" disabled={source === "ollama"} />
            </label>
          </div>
          <HubSearch source={source} category={category} current={repo?.repo ?? null} busy={busy} onOpen={(r) => void open(r)} />
          {error && <p class="error">{error}</p>}
        </section>
        <section class="details" aria-label="Model details">
          {!repo && <p class="muted">Search, then pick a model to see its files.</p>}
          {repo && (
            <>
              <h3>{repo.repo}</h3>
              <p class="muted">
                {repo.task ?? "model"} · revision {repo.revision.slice(0, 12)}
                {repo.gguf && " · GGUF"}
              </p>
              <FileGroups groups={repo.groups} gguf={repo.gguf} pick={pick} onPick={setPick} legend="Files" />
              {repo.gguf && repo.groups.some((g) => g.name === "mmproj") && pick !== ALL && (
                <p class="muted">The multimodal projector (mmproj) comes with it.</p>
              )}
              <label>
                Name in the library
                <input type="text" value={name} placeholder="from the repo" onInput={(e) => setName(e.currentTarget.value)} />
              </label>
              <label>
                Save folder
                <PathInput
                  label="Save folder"
                  folders
                  value={directory}
                  onInput={setDirectory}
                  placeholder="default: the models folder under modelyard's home"
                />
              </label>
              <button class="primary" disabled={busy} onClick={() => void start()}>
                Start download · {size(chosen.reduce((n, g) => n + g.size, 0))}
              </button>
            </>
          )}
        </section>
      </div>
      <JobList jobs={list} />
    </Dialog>
  );
}

function JobList({ jobs: list }: { jobs: Job[] }) {
  const { error, attempt: act } = useAttempt();
  if (!list.length) return null;
  return (
    <section class="jobs" aria-label="Downloads">
      <h3>Downloads</h3>
      {error && <p class="error">{error}</p>}
      {list.map((j) => {
        const pct = percent(j.bytes_done, j.bytes_total);
        return (
          <div class={`job ${j.state}`} key={j.id} data-testid={`job-${j.id}`}>
            <div class="line">
              <strong>{j.repo}</strong>
              <span class={`state ${j.state}`}>{j.state}</span>
              <span class="spacer" />
              {(j.state === "running" || j.state === "queued") && (
                <button onClick={() => void act(async () => jobs.put(await api.jobAction(j.id, "pause")))}>Pause</button>
              )}
              {(j.state === "paused" || j.state === "failed") && (
                <button onClick={() => void act(async () => jobs.put(await api.jobAction(j.id, "resume")))}>Resume</button>
              )}
              {(ACTIVE.includes(j.state) || j.state === "paused") && (
                <button class="danger" onClick={() => void act(async () => jobs.put(await api.jobAction(j.id, "cancel")))}>
                  Cancel
                </button>
              )}
              {!ACTIVE.includes(j.state) && j.state !== "paused" && (
                <button onClick={() => void act(async () => (await api.forget(j.id), jobs.drop(j.id)))}>Remove</button>
              )}
            </div>
            <progress max={100} value={pct} aria-label={`Progress of ${j.repo}`} />
            <div class="numbers">
              <span data-testid="percent">{pct.toFixed(1)}%</span>
              <span>
                {size(j.bytes_done)} / {size(j.bytes_total)}
              </span>
              <span>{j.state === "running" ? `${size(j.speed)}/s` : ""}</span>
              <span>{j.state === "running" ? `ETA ${duration(j.eta)}` : ""}</span>
              <span>
                files {j.files_done}/{j.files_total}
              </span>
            </div>
            {j.error && <p class="error">{j.hint ? `${j.error} (${j.hint})` : j.error}</p>}
            {j.state === "completed" && j.models.length > 0 && <p class="ok">In the library as {j.models.join(", ")}.</p>}
            <small class="muted">{j.destination}</small>
          </div>
        );
      })}
    </section>
  );
}

/** The downloader minimised: a button with the running downloads' progress. */
export function DownloadsButton({ onOpen }: { onOpen: () => void }) {
  const list = useJobs().filter((j) => ACTIVE.includes(j.state) || j.state === "paused");
  if (!list.length) return null;
  const done = list.reduce((n, j) => n + j.bytes_done, 0);
  const total = list.reduce((n, j) => n + j.bytes_total, 0);
  return (
    <button class="downloads-button" onClick={onOpen} aria-label="Downloads">
      ↓ {list.length} download{list.length > 1 ? "s" : ""} · {percent(done, total).toFixed(0)}%
    </button>
  );
}
