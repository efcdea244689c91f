import { useState } from "preact/hooks";
import { api, type UsageTotal } from "../api";
import { count } from "../format";
import { useAttempt, usePolled } from "../hooks";

const SPANS = { "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days" } as const;
type Span = keyof typeof SPANS;
const PERIODS = ["day", "week", "month", "total"] as const;

/** Usage: tokens, requests, images and quota-counted loads per model or key, an hourly chart,
 * and the quotas on loads (as the model library manual has them). */
export function Usage() {
  const [since, setSince] = useState<Span>("24h");
  const [by, setBy] = useState<"model" | "key">("model");
  const { data: report, error } = usePolled(() => api.usage(since, by), [since, by], 5000);
  return (
    <section class="usage">
      <div class="row">
        <h1>Usage</h1>
        <span class="spacer" />
        <label class="inline">
          Span
          <select aria-label="Usage span" value={since} onChange={(e) => setSince(e.currentTarget.value as Span)}>
            {(Object.keys(SPANS) as Span[]).map((s) => (
              <option key={s} value={s}>
                {SPANS[s]}
              </option>
            ))}
          </select>
        </label>
        <label class="inline">
          Per
          <select aria-label="Usage per" value={by} onChange={(e) => setBy(e.currentTarget.value as "model" | "key")}>
            <option value="model">model</option>
            <option value="key">key</option>
          </select>
        </label>
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      {report && <Chart hours={report.hours} since={report.since} />}
      {report && report.totals.length === 0 && <p class="muted">Nothing used in this span.</p>}
      {report && report.totals.length > 0 && (
        <table class="totals" aria-label="Usage totals">
          <thead>
            <tr>
              <th>{by === "model" ? "Model" : "Key"}</th>
              <th>Requests</th>
              <th>Tokens in</th>
              <th>Tokens out</th>
              <th>Images</th>
              <th>Loads</th>
            </tr>
          </thead>
          <tbody>
            {report.totals.map((t) => (
              <tr key={t.name} data-usage={t.name}>
                <td>{t.name}</td>
                <td>{t.requests}</td>
                <td>{count(t.tokens_in)}</td>
                <td>{count(t.tokens_out)}</td>
                <td>{t.images}</td>
                <td>{t.loads}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <BatchPanel />
      <QuotaPanel />
    </section>
  );
}

const RUNNING = ["validating", "in_progress", "finalizing", "cancelling"];

/** Every key's batch jobs, with their progress; one that runs can be cancelled. */
function BatchPanel() {
  const [version, setVersion] = useState(0);
  const { data } = usePolled(api.batches, [version], 2000);
  const { error, busy, attempt } = useAttempt();
  const cancel = (id: string) =>
    attempt(async () => {
      await api.cancelBatch(id);
      setVersion(version + 1);
    });
  return (
    <section class="batches" aria-label="Batches">
      <h2>Batches</h2>
      {data && data.length === 0 && (
        <p class="muted">No batch: POST /v1/batches, or `modelyard batches run FILE`, runs one after the interactive requests.</p>
      )}
      {data && data.length > 0 && (
        <table class="totals">
          <thead>
            <tr>
              <th>Batch</th>
              <th>Key</th>
              <th>Endpoint</th>
              <th>Status</th>
              <th>Progress</th>
              <th>Failed</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {data.map((b) => (
              <tr key={b.id} data-batch={b.id}>
                <td title={`created ${new Date(b.created_at * 1000).toLocaleString()}`}>{b.id}</td>
                <td>{b.key}</td>
                <td>{b.endpoint}</td>
                <td title={b.errors.join("\n")}>{b.status.replace("_", " ")}</td>
                <td>
                  <progress max={b.total || 1} value={b.completed + b.failed} aria-label={`Progress of ${b.id}`} />{" "}
                  {b.completed + b.failed}/{b.total}
                </td>
                <td>{b.failed}</td>
                <td>
                  {RUNNING.includes(b.status) && b.status !== "cancelling" && (
                    <button class="danger small" disabled={busy} onClick={() => void cancel(b.id)}>
                      Cancel
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}

const HOUR = 3600_000;

/** Every hour from ``since`` to now, with what was used in it (nothing for most). */
function span(used: UsageTotal[], since: string): UsageTotal[] {
  const byHour = new Map(used.map((h) => [Math.floor(Date.parse(h.name) / HOUR), h]));
  const first = Math.floor(Date.parse(since) / HOUR);
  const last = Math.floor(Date.now() / HOUR);
  const empty = (at: number) => ({
    name: new Date(at * HOUR).toISOString(), requests: 0, tokens_in: 0, tokens_out: 0, images: 0, loads: 0,
  });
  const out: UsageTotal[] = [];
  for (let h = first; h <= last; h++) out.push(byHour.get(h) ?? empty(h));
  return out;
}

/** Tokens in and out per hour of the span, as stacked bars. */
function Chart({ hours: used, since }: { hours: UsageTotal[]; since: string }) {
  const hours = span(used, since);
  const top = Math.max(1, ...hours.map((h) => h.tokens_in + h.tokens_out));
  const width = 640;
  const height = 160;
  const bar = width / hours.length;
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" role="img" aria-label="Tokens per hour">
        {hours.map((h, i) => {
          const inH = (h.tokens_in / top) * (height - 4);
          const outH = (h.tokens_out / top) * (height - 4);
          return (
            <g key={h.name}>
              <title>{`${new Date(h.name).toLocaleString()}: ${h.tokens_in} in, ${h.tokens_out} out, ${h.requests} requests`}</title>
              <rect class="in" x={i * bar + 1} width={Math.max(1, bar - 2)} y={height - inH} height={inH} />
              <rect class="out" x={i * bar + 1} width={Math.max(1, bar - 2)} y={height - inH - outH} height={outH} />
            </g>
          );
        })}
      </svg>
      <figcaption class="muted">
        Tokens per hour: <span class="swatch in" /> in <span class="swatch out" /> out · highest {count(top)}
      </figcaption>
    </figure>
  );
}

function QuotaPanel() {
  const [version, setVersion] = useState(0);
  const { data } = usePolled(api.quotas, [version], 5000);
  const [loads, setLoads] = useState("10");
  const [period, setPeriod] = useState<string>("day");
  const [key, setKey] = useState("*");
  const { error, busy, attempt } = useAttempt();
  const save = () =>
    attempt(async () => {
      await api.setQuota(key.trim() || "*", Number(loads), period);
      setVersion(version + 1);
    });
  const remove = (k: string) =>
    attempt(async () => {
      await api.removeQuota(k);
      setVersion(version + 1);
    });
  return (
    <section class="quotas" aria-label="Quotas">
      <h2>Quotas</h2>
      <p class="muted">
        Loading an embedding, rerank, multimodal or image model counts against a quota once it is loaded; chat models
        load freely. "*" is the quota of every key without one of its own.
      </p>
      {data && data.quotas.length === 0 && <p class="muted">No quota: every model loads freely.</p>}
      {data && data.standings.length > 0 && (
        <table class="totals">
          <thead>
            <tr>
              <th>Key</th>
              <th>Quota</th>
              <th>Used</th>
              <th>Left</th>
              <th>Renews</th>
            </tr>
          </thead>
          <tbody>
            {data.standings.map((s) => (
              <tr key={s.key} data-standing={s.key}>
                <td>
                  {s.key}
                  {s.quota !== s.key && <small class="muted"> (*)</small>}
                </td>
                <td>{s.period === "total" ? `${s.loads} in total` : `${s.loads} per ${s.period}`}</td>
                <td>{s.used}</td>
                <td>{s.left}</td>
                <td>{s.renews ? new Date(s.renews).toLocaleString() : "never"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {data &&
        data.quotas.map((q) => (
          <p key={q.key} class="row">
            <span>
              <strong>{q.key}</strong>: {q.loads} {q.period === "total" ? "in total" : `per ${q.period}`}
            </span>
            <button class="danger small" disabled={busy} onClick={() => void remove(q.key)}>
              Remove
            </button>
          </p>
        ))}
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <label class="inline">
          Key
          <input type="text" aria-label="Quota key" value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        </label>
        <label class="inline">
          Loads
          <input type="number" min={0} aria-label="Quota loads" value={loads} onInput={(e) => setLoads(e.currentTarget.value)} />
        </label>
        <label class="inline">
          Per
          <select aria-label="Quota period" value={period} onChange={(e) => setPeriod(e.currentTarget.value)}>
            {PERIODS.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </label>
        <button class="primary" disabled={busy}>
          Set quota
        </button>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}
