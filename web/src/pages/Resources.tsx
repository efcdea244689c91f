import { useState } from "preact/hooks";
import { api, type Worker } from "../api";
import { Editable } from "../components/Editable";
import { labelText, parseLabels, size } from "../format";
import { usePolled } from "../hooks";

/** Resources: the workers engines run on (one, "local", without a cluster): their GPUs and
 * memory, labels (editable: selectors match them), a note, and which instances run there. */
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
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
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
                <small class="muted block">{w.address}</small>
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
