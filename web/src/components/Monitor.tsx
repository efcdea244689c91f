import { useEffect, useState } from "preact/hooks";
import { api, events, type MonitorEvent, type Sample } from "../api";
import { size } from "../format";
import { Ring } from "./Ring";

const RECENT = 120; // seconds an unload to relieve memory pressure stays in the notice

/** The resource monitor along the bottom: CPU and memory rings, a card per GPU when there is one,
 * and a notice while memory is under pressure (at or past MODELYARD_MEMORY_PRESSURE), naming
 * what was unloaded to relieve it. */
export function Monitor() {
  const [sample, setSample] = useState<Sample | null>(null);
  const [unloaded, setUnloaded] = useState<MonitorEvent[]>([]);
  useEffect(() => events<Sample>("/api/monitor/stream", setSample), []);
  const pressed = !!sample && sample.memory_percent >= sample.pressure_percent;
  useEffect(() => {
    // what was unloaded lately: looked at while under pressure, and a while after
    const look = () =>
      void api
        .monitorEvents()
        .then((all) => setUnloaded(all.filter((e) => e.kind === "unloaded" && Date.now() / 1000 - e.at < RECENT)))
        .catch(() => setUnloaded([]));
    look();
    const timer = window.setInterval(look, 5000);
    return () => window.clearInterval(timer);
  }, [pressed]);
  if (!sample) return <footer class="monitor">Resource monitor: waiting for the first sample…</footer>;
  return (
    <footer class="monitor" aria-label="Resource monitor">
      {(pressed || unloaded.length > 0) && (
        <div class="pressure" role="alert" aria-label="Low memory">
          <strong>Low memory</strong>
          <small>
            {sample.memory_percent.toFixed(0)}% used; pressure from {sample.pressure_percent.toFixed(0)}%
          </small>
          {unloaded.map((e) => (
            <small key={e.at}>{e.message}</small>
          ))}
        </div>
      )}
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
