import { useState } from "preact/hooks";
import { api, type Drain, type Worker } from "../api";
import { Editable } from "../components/Editable";
import { labelText, parseLabels, size } from "../format";
import { usePolled } from "../hooks";

/** Resources: the workers engines run on (one, "local", without a cluster): their GPUs and
 * memory, labels (editable: selectors match them), a note, which instances run there, and a
 * button that drains a worker for maintenance (or brings it back). */
export function Resources() {
  const [changed, setChanged] = useState(0);
  const { data: workers, error } = usePolled(api.workers, [changed]);
  const { data: instances } = usePolled(api.instances, [changed]);
  const byId = new Map(instances?.map((i) => [i.id, i]) ?? []);
  /** What the placement claimed for an instance on this worker, beside what it uses. */
  const claimedHere = (id: number, node: string): string => {
    const claim = byId.get(id)?.claimed.find((c) => c.node === node);
    if (!claim) return "";
    const vram = claim.vram.reduce((n, g) => n + g.bytes, 0);
    return ` · claimed ${size(claim.ram)}${vram ? ` + ${size(vram)} VRAM` : ""}, uses ${size(byId.get(id)?.memory)}`;
  };

  const [draining, setDraining] = useState<string | null>(null);
  const [drained, setDrained] = useState<Drain | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  /** Drain a worker (its instances move before they stop), or bring a drained one back. */
  const toggleDrain = async (w: Worker) => {
    setDraining(w.name);
    setFailed(null);
    setDrained(null);
    try {
      if (w.drained) await api.undrainWorker(w.name);
      else setDrained(await api.drainWorker(w.name));
    } catch (e) {
      setFailed(String(e instanceof Error ? e.message : e));
    } finally {
      setDraining(null);
      setChanged((n) => n + 1);
    }
  };

  const edit = async (w: Worker, body: Record<string, unknown>) => {
    await api.editWorker(w.name, body);
    setChanged((n) => n + 1);
  };
  const saveLabels = (w: Worker, text: string) => {
    const wanted = parseLabels(text);
    for (const key of Object.keys(w.labels)) if (!(key in wanted)) wanted[key] = ""; // removed
    return edit(w, { labels: wanted });
  };

  return (
    <section class="resources">
      <h1>Resources</h1>
      {(error || failed) && (
        <p class="error" role="alert">
          {error || failed}
        </p>
      )}
      {drained && (
        <div class="drained" role="status">
          <p>
            {drained.worker.name} drained: {drained.moved.length} instance{drained.moved.length === 1 ? "" : "s"}{" "}
            moved{drained.stayed.length > 0 && `, ${drained.stayed.length} stayed`}
          </p>
          <ul>
            {drained.moved.map((m) => (
              <li key={m.instance}>
                {m.model}: #{m.instance} → #{m.to} on {m.worker}
              </li>
            ))}
            {drained.stayed.map((s) => (
              <li key={s.instance} class="error">
                {s.model}: #{s.instance} stays: {s.reason}
              </li>
            ))}
          </ul>
        </div>
      )}
      <table class="workers">
        <thead>
          <tr>
            <th>Worker</th>
            <th>Labels</th>
            <th>GPUs (free / total)</th>
            <th>RAM (free / total)</th>
            <th>Running here</th>
            <th>Note</th>
          </tr>
        </thead>
        <tbody>
          {workers?.map((w) => (
            <tr key={w.name} data-worker={w.name}>
              <td>
                <strong>{w.name}</strong>
                {!w.alive && <span class="status error"> gone</span>}
                {w.drained && <span class="status"> drained</span>}
                <small class="muted block">{w.address}</small>
                <button
                  type="button"
                  class="small"
                  disabled={draining !== null}
                  title={w.drained ? "let new instances go here again" : "move its instances elsewhere, place nothing new here"}
                  onClick={() => toggleDrain(w)}
                >
                  {draining === w.name ? "Draining…" : w.drained ? "Undrain" : "Drain"}
                </button>
              </td>
              <td>
                <Editable
                  value={labelText(w.labels)}
                  label={`labels of ${w.name}`}
                  placeholder="no labels"
                  onSave={(text) => saveLabels(w, text)}
                />
              </td>
              <td>
                {w.gpus.length === 0 && <span class="muted">none</span>}
                {w.gpus.map((g) => (
                  <div key={g.index} class="gpu" data-gpu={g.index}>
                    {g.index}: {g.name} · {size(g.vram_free)} / {size(g.vram_total)}
                    {g.temperature != null && ` · ${g.temperature.toFixed(0)} °C`}
                    <meter min={0} max={g.vram_total} value={g.vram_total - g.vram_free} />
                  </div>
                ))}
              </td>
              <td>
                {size(w.ram_free)} / {size(w.ram_total)}
                <meter min={0} max={w.ram_total} value={w.ram_total - w.ram_free} />
              </td>
              <td>
                {w.instances.length === 0 && <span class="muted">nothing</span>}
                {w.instances.map((id) => (
                  <div key={id} data-instance={id}>
                    #{id} {byId.get(id)?.model ?? ""}
                    <small class="muted">{claimedHere(id, w.name)}</small>
                  </div>
                ))}
              </td>
              <td>
                <Editable
                  value={w.note}
                  label={`note of ${w.name}`}
                  placeholder="add a note"
                  onSave={(note) => edit(w, { note })}
                />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
