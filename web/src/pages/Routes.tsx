import { useState } from "preact/hooks";
import { api, type ModelRoute, type RouteTarget } from "../api";
import { Confirm } from "../components/Dialog";
import { useAttempt, usePolled } from "../hooks";
import { libraryChanged, useLibraryVersion } from "../store";

const PASSED = ["overloaded", "unavailable", "failed"] as const;

/** What a target did since the server started: served, and why it was passed over. */
function passedOver(requests: Record<string, number>): string {
  return PASSED.filter((o) => requests[o]).map((o) => `${requests[o]} ${o}`).join(", ") || "-";
}

type Draft = { name: string; description: string; targets: RouteTarget[] };

/** The targets of a route being made or changed: each a library model with its weight, in the
 * order of fallback. */
function TargetsEditor({ draft, models, onChange }: { draft: Draft; models: string[]; onChange: (d: Draft) => void }) {
  const set = (i: number, t: Partial<RouteTarget>) =>
    onChange({ ...draft, targets: draft.targets.map((old, j) => (j === i ? { ...old, ...t } : old)) });
  const move = (i: number, by: number) => {
    const targets = [...draft.targets];
    [targets[i], targets[i + by]] = [targets[i + by], targets[i]];
    onChange({ ...draft, targets });
  };
  return (
    <div class="targets">
      {draft.targets.map((t, i) => (
        <div class="row" key={i} role="group" aria-label={`Target ${i + 1}`}>
          <select aria-label={`Model of target ${i + 1}`} value={t.model} onChange={(e) => set(i, { model: e.currentTarget.value })}>
            {models.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
          <label class="inline">
            Weight
            <input
              type="number"
              min={0}
              max={1000}
              aria-label={`Weight of target ${i + 1}`}
              value={t.weight ?? 1}
              onChange={(e) => set(i, { weight: Number(e.currentTarget.value) })}
            />
          </label>
          <button type="button" title="Tried earlier" disabled={i === 0} onClick={() => move(i, -1)}>
            Up
          </button>
          <button
            type="button"
            title="Take it out"
            onClick={() => onChange({ ...draft, targets: draft.targets.filter((_, j) => j !== i) })}
          >
            Remove
          </button>
        </div>
      ))}
      <button type="button" disabled={models.length === 0} onClick={() => onChange({ ...draft, targets: [...draft.targets, { model: models[0], weight: 1 }] })}>
        Add a target
      </button>
    </div>
  );
}

/** Model routes: one name clients ask for, sent to its targets by weight, the next one taking a
 * request its target could not answer; what each target did. */
export function Routes() {
  const [draft, setDraft] = useState<Draft | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const [removing, setRemoving] = useState<string | null>(null);
  const { error, busy, attempt } = useAttempt();
  const version = useLibraryVersion();
  const { data: routes, error: loadError } = usePolled(api.routes, [version]);
  const { data: library } = usePolled(api.models, [version], 10_000);
  const models = (library ?? []).map((m) => m.name);

  const save = () =>
    attempt(async () => {
      if (!draft) return;
      if (editing) await api.editRoute(editing, { description: draft.description, targets: draft.targets });
      else await api.createRoute(draft);
      setDraft(null);
      setEditing(null);
      libraryChanged.emit();
    });
  const edit = (r: ModelRoute) => {
    setEditing(r.name);
    setDraft({ name: r.name, description: r.description, targets: r.targets.map((t) => ({ model: t.model, weight: t.weight })) });
  };

  return (
    <section class="routes">
      <div class="row">
        <h1>Routes</h1>
        <span class="spacer" />
        <button class="primary" disabled={draft !== null} onClick={() => (setEditing(null), setDraft({ name: "", description: "", targets: [] }))}>
          New route
        </button>
      </div>
      {(error || loadError) && (
        <p class="error" role="alert">
          {error ?? loadError}
        </p>
      )}
      {draft && (
        <form class="route-form" aria-label={editing ? `Edit route ${editing}` : "New route"} onSubmit={(e) => (e.preventDefault(), void save())}>
          {!editing && (
            <label>
              Name
              <input value={draft.name} placeholder="what clients ask for" onInput={(e) => setDraft({ ...draft, name: e.currentTarget.value })} />
            </label>
          )}
          <label>
            Description
            <input value={draft.description} onInput={(e) => setDraft({ ...draft, description: e.currentTarget.value })} />
          </label>
          <TargetsEditor draft={draft} models={models} onChange={setDraft} />
          <div class="row">
            <button type="submit" class="primary" disabled={busy}>
              Save
            </button>
            <button type="button" onClick={() => (setDraft(null), setEditing(null))}>
              Cancel
            </button>
          </div>
        </form>
      )}
      {routes && routes.length === 0 && !draft && (
        <p class="muted">No route yet: a route sends one name to several models, by weight, with fallback.</p>
      )}
      {(routes ?? []).map((r) => (
        <article class="deployment" key={r.name} data-route={r.name} aria-label={`Route ${r.name}`}>
          <header class="row">
            <h2>{r.name}</h2>
            {r.description && <span class="muted">{r.description}</span>}
            <span class="spacer" />
            <button disabled={busy || draft !== null} onClick={() => edit(r)}>
              Edit
            </button>
            <button class="danger" disabled={busy} onClick={() => setRemoving(r.name)}>
              Delete
            </button>
          </header>
          <table class="instances">
            <thead>
              <tr>
                <th>Target</th>
                <th>Weight</th>
                <th>Loaded</th>
                <th>Served</th>
                <th>Passed over</th>
              </tr>
            </thead>
            <tbody>
              {r.targets.map((t) => (
                <tr key={t.model} data-target={t.model}>
                  <td>{t.model}</td>
                  <td>{t.weight === 0 ? "0 (fallback)" : t.weight}</td>
                  <td>
                    <span class={`status ${t.loaded ? "loaded" : ""}`}>{t.loaded ? "loaded" : "not loaded"}</span>
                  </td>
                  <td data-served>{t.requests.served ?? 0}</td>
                  <td>{passedOver(t.requests)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </article>
      ))}
      {removing && (
        <Confirm
          title="Delete route"
          confirm="Delete"
          danger
          onCancel={() => setRemoving(null)}
          onConfirm={() => {
            const name = removing;
            setRemoving(null);
            void attempt(async () => (await api.removeRoute(name), libraryChanged.emit()));
          }}
        >
          <p>
            Delete the route <strong>{removing}</strong>? Its models stay in the library.
          </p>
        </Confirm>
      )}
    </section>
  );
}
