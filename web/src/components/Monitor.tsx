import { useEffect, useState } from "preact/hooks";
import { events, type Sample } from "../api";
import { size } from "../format";
import { Ring } from "./Ring";

/** The resource monitor along the bottom: CPU and memory rings, a card per GPU when there is one. */
export function Monitor() {
  const [sample, setSample] = useState<Sample | null>(null);
  useEffect(() => events<Sample>("/api/monitor/stream", setSample), []);
  if (!sample) return <footer class="monitor">Resource monitor: waiting for the first sample…</footer>;
  return (
    <footer class="monitor" aria-label="Resource monitor">
      <Ring label="CPU" percent={sample.cpu_percent} detail={`${sample.cpu_percent.toFixed(0)}% of all cores`} />
      <Ring
        label="Memory"
        percent={sample.memory_percent}
        detail={`${size(sample.memory_used)} of ${size(sample.memory_total)}`}
      />
      {(sample.gpus ?? []).map((g) => {
        const used = g.memory_used ?? 0;
        const pct = g.memory_total ? (100 * used) / g.memory_total : 0;
        return (
          <div class={`gpu${pct > 90 ? " hot" : ""}`} key={g.index} data-testid="gpu-card">
            <strong>
              GPU {g.index} · {g.vendor}
            </strong>
            <small>{g.name}</small>
            <small>
              {g.memory_total ? `${size(used)} / ${size(g.memory_total)}` : "memory unknown"}
              {g.temperature != null && ` · ${g.temperature.toFixed(0)} °C`}
            </small>
          </div>
        );
      })}
    </footer>
  );
}
