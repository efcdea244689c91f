import { useEffect, useState } from "preact/hooks";
import { api, type BackendInfo, events, type InstallJob } from "../api";
import { useAttempt } from "../hooks";

const VARIANT_LABELS: Record<string, string> = { cpu: "CPU", cuda: "CUDA (NVIDIA GPU)", vulkan: "Vulkan (a GPU's driver)" };

/** Engines and environments: what runs each backend, versions side by side, managed
 * environments, and installs with their live progress (CUDA offered only with an NVIDIA GPU, Vulkan only with a GPU's Vulkan driver). */
export function Settings() {
  const [backends, setBackends] = useState<BackendInfo[] | null>(null);
  const [variants, setVariants] = useState<Record<string, string>>({});
  const [jobs, setJobs] = useState<Record<string, InstallJob>>({});
  const { error, attempt } = useAttempt();

  const refresh = () => attempt(async () => setBackends(await api.backends()));
  useEffect(() => {
    void refresh();
    void api.installs().then((list) => {
      const running = list.filter((j) => j.state === "running");
      running.forEach(follow);
    });
  }, []);

  const follow = (job: InstallJob) => {
    setJobs((all) => ({ ...all, [job.backend]: job }));
    const stop = events<InstallJob>(`/api/installs/${job.id}/events`, (j) => {
      setJobs((all) => ({ ...all, [j.backend]: j }));
      if (j.state !== "running") {
        stop();
        void refresh();
      }
    });
  };
  const install = (b: BackendInfo) =>
    attempt(async () => follow(await api.install(b.name, variants[b.name] ?? b.variants[b.variants.length - 1])));

  return (
    <section class="settings">
      <h2>Engines and environments</h2>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <table class="backends">
        <thead>
          <tr>
            <th>Backend</th>
            <th>State</th>
            <th>Engine</th>
            <th>Install</th>
          </tr>
        </thead>
        <tbody>
          {(backends ?? []).map((b) => {
            const job = jobs[b.name];
            const running = job?.state === "running";
            return (
              <tr key={b.name} data-backend={b.name}>
                <td>
                  <b>{b.name}</b>
                  {b.versions.length > 0 && <small class="muted block">versions: {b.versions.join(", ")}</small>}
                  {b.environments.map((e) => (
                    <small class="muted block" key={e.folder}>
                      {e.variant} environment: {e.folder}
                    </small>
                  ))}
                </td>
                <td>
                  <span class={`status ${b.installed ? "loaded" : ""}`}>{b.installed ? "installed" : "not installed"}</span>
                </td>
                <td>
                  <small>{b.engine}</small>
                </td>
                <td>
                  {b.installable && b.variants.length === 0 ? (
                    <small class="muted">needs hardware this machine lacks</small>
                  ) : b.installable ? (
                    <div class="row">
                      {b.variants.length > 1 ? (
                        <select
                          aria-label={`Variant of ${b.name}`}
                          value={variants[b.name] ?? b.variants[b.variants.length - 1]}
                          onChange={(e) => setVariants({ ...variants, [b.name]: e.currentTarget.value })}
                        >
                          {b.variants.map((v) => (
                            <option key={v} value={v}>
                              {VARIANT_LABELS[v] ?? v}
                            </option>
                          ))}
                        </select>
                      ) : (
                        <small class="muted">{VARIANT_LABELS[b.variants[0]] ?? b.variants[0]}</small>
                      )}
                      <button disabled={running} onClick={() => void install(b)}>
                        {running ? "Installing…" : b.installed ? "Reinstall" : "Install"}
                      </button>
                    </div>
                  ) : (
                    <small class="muted">outside modelyard</small>
                  )}
                  {job && (
                    <div class="job" aria-label={`Install of ${b.name}`}>
                      <small>{job.state === "running" ? job.stage : job.state === "done" ? `installed: ${job.where}` : "failed"}</small>
                      <progress max={job.steps} value={job.state === "done" ? job.steps : job.step} />
                      {job.error && (
                        <p class="error" role="alert">
                          {job.error}
                          {job.hint && <small class="block">{job.hint}</small>}
                        </p>
                      )}
                    </div>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
