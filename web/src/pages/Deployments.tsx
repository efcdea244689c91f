import { useState } from "preact/hooks";
import { api, type Instance } from "../api";
import { Confirm } from "../components/Dialog";
import { Editable } from "../components/Editable";
import { DeployDialog } from "../dialogs/DeployDialog";
import { labelText, selectorOf, size } from "../format";
import { useAttempt, usePolled } from "../hooks";
import { libraryChanged, useLibraryVersion } from "../store";

/** What the placement claimed for an instance: its RAM, and its VRAM where it has some. */
function claimed(claims: Instance["claimed"]): string {
  if (claims.length === 0) return "-";
  const ram = claims.reduce((n, c) => n + c.ram, 0);
  const vram = claims.reduce((n, c) => n + c.vram.reduce((m, g) => m + g.bytes, 0), 0);
  return size(ram) + (vram ? ` + ${size(vram)} VRAM` : "");
}

/** A deployment with no instances now: stopped, or held back (retrying, evicted, failed). */
const held = (state: string) => state !== "running" && state !== "starting";

/** Deployments: models kept running with their engines' setup, each with its instances; deploy,
 * scale, stop, start, reload, delete; delete an instance and a new one takes its place. */
export function Deployments() {
  const [deploying, setDeploying] = useState(false);
  const [removing, setRemoving] = useState<string | null>(null);
  const { error, busy, attempt } = useAttempt();
  const version = useLibraryVersion();
  const { data: list, error: loadError } = usePolled(api.deployments, [version]);

  const act = (f: () => Promise<unknown>) => attempt(async () => (await f(), libraryChanged.emit()));
  // an Editable shows its own error: a refused change stays in its field
  const edited = async (name: string, patch: Record<string, unknown>) => {
    await api.editDeployment(name, patch);
    libraryChanged.emit();
  };
  const kept = list?.filter((d) => !d.jit) ?? [];

  return (
    <section class="deployments">
      <div class="row">
        <h1>Deployments</h1>
        <span class="spacer" />
        <button class="primary" onClick={() => setDeploying(true)}>
          Deploy a model
        </button>
      </div>
      {(error || loadError) && (
        <p class="error" role="alert">
          {error ?? loadError}
        </p>
      )}
      {list && kept.length === 0 && <p class="muted">No deployment yet: deploy a model to keep it running.</p>}
      {kept.map((d) => (
        <article class="deployment" key={d.model} data-deployment={d.model} aria-label={`Deployment ${d.model}`}>
          <header class="row">
            <h2>
              {d.model}
              {d.adapter && <small class="muted"> + {d.adapter}</small>}
            </h2>
            <span class={`status ${held(d.state) ? (d.state === "stopped" ? "stopped" : "error") : "running"}`}>
              {held(d.state) ? d.state : `${d.instances.filter((i) => i.state === "running").length}/${d.replicas} running`}
            </span>
            {d.reason && (
              <span class="muted" data-reason>
                {d.reason}
                {d.retry_in !== null && `; tried again in ${Math.round(d.retry_in)} s`}
              </span>
            )}
            <span class="muted">
              {d.serving_backend ?? (d.backend || "auto")}
              {d.backend_version && ` ${d.backend_version}`}
              {d.args.length > 0 && ` · ${d.args.join(" ")}`}
              {!d.restart && " · no auto-restart"}
            </span>
            <span class="spacer" />
            <label class="inline">
              Replicas
              <input
                type="number"
                min={1}
                max={64}
                value={d.replicas}
                aria-label={`Replicas of ${d.model}`}
                disabled={busy}
                onChange={(e) =>
                  void act(() => api.editDeployment(d.model, { replicas: Number(e.currentTarget.value) }))
                }
              />
            </label>
            {d.stopped ? (
              <button disabled={busy} onClick={() => void act(() => api.deploymentAction(d.model, "start"))}>
                Start
              </button>
            ) : (
              <>
                <button disabled={busy} onClick={() => void act(() => api.deploymentAction(d.model, "reload"))}>
                  Reload
                </button>
                <button disabled={busy} onClick={() => void act(() => api.deploymentAction(d.model, "stop"))}>
                  Stop
                </button>
              </>
            )}
            <button class="danger" disabled={busy} onClick={() => setRemoving(d.model)}>
              Delete
            </button>
          </header>
          <div class="row placement" role="group" aria-label={`Where ${d.model} runs`}>
            <label class="inline">
              Placement
              <select
                value={d.placement}
                disabled={busy}
                aria-label={`Placement of ${d.model}`}
                onChange={(e) => void act(() => api.editDeployment(d.model, { placement: e.currentTarget.value }))}
              >
                <option value="spread">spread</option>
                <option value="binpack">binpack</option>
              </select>
            </label>
            <span class="muted">workers with</span>
            <Editable
              value={labelText(d.selector)}
              label={`selector of ${d.model}`}
              placeholder="any labels"
              onSave={(text) => edited(d.model, { selector: selectorOf(text) })}
            />
            <span class="muted">GPUs</span>
            <Editable
              value={d.gpus.join(", ")}
              label={`GPUs of ${d.model}`}
              placeholder="the scheduler's choice"
              onSave={(text) =>
                edited(d.model, { gpus: text.split(",").map((g) => g.trim()).filter(Boolean) })
              }
            />
            <label class="inline">
              <input
                type="checkbox"
                checked={d.cpu_offload}
                disabled={busy}
                onChange={(e) => void act(() => api.editDeployment(d.model, { cpu_offload: e.currentTarget.checked }))}
              />
              CPU offload
            </label>
          </div>
          {d.instances.length > 0 && (
            <table class="instances">
              <thead>
                <tr>
                  <th>Instance</th>
                  <th>State</th>
                  <th>Worker</th>
                  <th>Memory</th>
                  <th>Claimed</th>
                  <th>PID</th>
                  <th>Restarts</th>
                  <th>Endpoint</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {d.instances.map((i) => (
                  <tr key={i.id} data-instance={i.id}>
                    <td>#{i.id}</td>
                    <td>
                      <span class={`status ${i.state}`}>{i.state}</span>
                      {i.error && <small class="error block">{i.error}</small>}
                    </td>
                    <td>{i.node ?? ""}</td>
                    <td>{size(i.memory)}</td>
                    <td data-claimed>{claimed(i.claimed)}</td>
                    <td>{i.pid ?? ""}</td>
                    <td>{i.restarts}</td>
                    <td>
                      <code>{i.url ?? ""}</code>
                    </td>
                    <td class="actions">
                      <button
                        title="A new instance takes its place"
                        disabled={busy}
                        onClick={() => void act(() => api.removeInstance(i.id))}
                      >
                        Delete instance
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </article>
      ))}
      {deploying && <DeployDialog onClose={() => setDeploying(false)} onDeployed={() => setDeploying(false)} />}
      {removing && (
        <Confirm
          title="Delete deployment"
          confirm="Delete"
          danger
          onCancel={() => setRemoving(null)}
          onConfirm={() => {
            const name = removing;
            setRemoving(null);
            void act(() => api.removeDeployment(name));
          }}
        >
          <p>
            Stop <strong>{removing}</strong> and forget its deployment? The model stays in the library.
          </p>
        </Confirm>
      )}
    </section>
  );
}
