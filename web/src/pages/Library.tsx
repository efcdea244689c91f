import { Fragment } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { api, ApiError, loadModel, CATEGORIES, CATEGORY_LABELS, type Category, DIFFUSION, type Estimate, type Model } from "../api";
import { AdapterRows } from "../components/AdapterRows";
import { Confirm } from "../components/Dialog";
import { Editable } from "../components/Editable";
import { CreateDialog } from "../dialogs/CreateDialog";
import { EngineMissing } from "../dialogs/EngineMissing";
import { ImportDialog } from "../dialogs/ImportDialog";
import { LoadConfirm } from "../dialogs/LoadDialog";
import { AdapterDialog, ComponentsDialog, ContextDialog } from "../dialogs/ModelDialogs";
import { useAttempt } from "../hooks";
import { count, size } from "../format";
import { libraryChanged, message, useLibraryVersion } from "../store";

type Modal =
  | { kind: "import" }
  | { kind: "create" }
  | { kind: "context"; model: Model }
  | { kind: "components"; model: Model }
  | { kind: "adapter"; model: Model }
  | { kind: "delete"; model: Model }
  | { kind: "delete-adapter"; model: Model; adapter: string }
  | { kind: "load"; model: Model; adapter: string | null; estimate: Estimate | null; note: string | null }
  | { kind: "unload"; models: Model[] }
  | { kind: "environment"; model: Model; error: ApiError };

/** The model library: a tab per category, a table editable in place, the toolbar's actions. */
export function Library({ openDownloader }: { openDownloader: () => void }) {
  const [category, setCategory] = useState<Category>("chat");
  const [models, setModels] = useState<Model[] | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [adapters, setAdapters] = useState<Record<string, string | null>>({});
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const [fresh, setFresh] = useState<Set<string>>(new Set()); // just created: highlighted
  const [modal, setModal] = useState<Modal | null>(null);
  const [busy, setBusy] = useState<string | null>(null); // "Loading…", "Unloading…"
  const [error, setError] = useState<string | null>(null);
  const { error: modalError, setError: setModalError, attempt: inModal } = useAttempt();
  const version = useLibraryVersion();

  const refresh = useCallback(async () => {
    try {
      setModels(await api.models(category));
      setError(null);
    } catch (e) {
      setError(message(e));
    }
  }, [category]);
  useEffect(() => void refresh(), [refresh, version]);
  useEffect(() => {
    // a model may load on a request (autoload) or unload when idle: keep the status true
    const timer = window.setInterval(() => document.hidden || void refresh(), 5000);
    return () => window.clearInterval(timer);
  }, [refresh]);

  const close = () => {
    setModal(null);
    setModalError(null);
  };
  const changed = () => {
    libraryChanged.emit();
    close();
  };
  const current = models?.find((m) => m.name === selected) ?? null;

  const askLoad = async () => {
    if (!current) return setError("Select a model to load.");
    setError(null);
    let estimate: Estimate | null = null;
    let note: string | null = null;
    try {
      estimate = await api.estimate(current.name);
    } catch (e) {
      note = `No memory estimate: ${message(e)}`;
    }
    setModal({ kind: "load", model: current, adapter: adapters[current.name] ?? null, estimate, note });
  };
  const load = async (m: Model, adapter: string | null, force: boolean) => {
    close();
    setBusy(`Loading ${m.name}…`);
    try {
      await loadModel(m.name, adapter, force, (text) => setBusy(`Loading ${m.name}: ${text}…`));
      libraryChanged.emit();
    } catch (e) {
      if (e instanceof ApiError && e.code === "engine_unavailable") setModal({ kind: "environment", model: m, error: e });
      else setError(message(e));
    } finally {
      setBusy(null);
    }
  };
  const askUnload = () => {
    const loaded = (models ?? []).filter((m) => m.loaded);
    if (!loaded.length) return setError(`No ${CATEGORY_LABELS[category].toLowerCase()} model is loaded.`);
    setModal({ kind: "unload", models: loaded });
  };
  const unload = async (list: Model[]) => {
    close();
    setBusy(`Unloading ${list.map((m) => m.name).join(", ")}…`);
    try {
      for (const m of list) await api.unload(m.name);
      libraryChanged.emit();
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy(null);
    }
  };
  const toggle = (name: string) => {
    const next = new Set(expanded);
    if (next.has(name)) next.delete(name);
    else next.add(name);
    setExpanded(next);
  };

  return (
    <section class="library">
      <div class="toolbar" role="toolbar" aria-label="Library actions">
        <button onClick={() => setModal({ kind: "import" })}>Import</button>
        <button onClick={openDownloader}>Download</button>
        {/* until the list has come, which model is loaded is not known here */}
        <button class="primary" disabled={!!busy || models === null} onClick={() => void askLoad()}>
          {busy?.startsWith("Loading") ? "Loading…" : "Load"}
        </button>
        <button disabled={!!busy || models === null} onClick={askUnload}>
          {busy?.startsWith("Unloading") ? "Unloading…" : "Unload"}
        </button>
        <button onClick={() => void refresh()}>Refresh</button>
        <button onClick={() => setModal({ kind: "create" })}>Create model</button>
        {busy && <span class="muted">{busy}</span>}
      </div>
      <div class="tabs" role="tablist">
        {CATEGORIES.map((c) => (
          <button
            key={c}
            role="tab"
            aria-selected={c === category}
            class={c === category ? "current" : ""}
            onClick={() => (setCategory(c), setSelected(null))}
          >
            {CATEGORY_LABELS[c]}
          </button>
        ))}
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <table class="models">
        <thead>
          <tr>
            <th aria-label="Select" />
            <th aria-label="Adapters" />
            <th>Name</th>
            <th>Description</th>
            <th>Format</th>
            <th>Size</th>
            <th>Status</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {models?.length === 0 && (
            <tr>
              <td colSpan={8} class="muted empty-row">
                No {CATEGORY_LABELS[category].toLowerCase()} models yet: import or download one.
              </td>
            </tr>
          )}
          {models?.map((m) => (
            <Fragment key={m.name}>
              <tr class={`${m.name === selected ? "selected" : ""}${fresh.has(m.name) ? " fresh" : ""}`} data-model={m.name}>
                <td>
                  <input type="radio" name="model" aria-label={`Select ${m.name}`} checked={m.name === selected} onChange={() => setSelected(m.name)} />
                </td>
                <td>
                  <button
                    class="icon"
                    aria-label={`${expanded.has(m.name) ? "Hide" : "Show"} details of ${m.name}`}
                    aria-expanded={expanded.has(m.name)}
                    onClick={() => toggle(m.name)}
                  >
                    {expanded.has(m.name) ? "▾" : "▸"}
                    {m.adapters.length > 0 && <small>{m.adapters.length}</small>}
                  </button>
                </td>
                <td>
                  <Editable
                    label="name"
                    value={m.name}
                    onSave={async (v) => {
                      await api.edit(m.name, { name: v.trim() });
                      if (selected === m.name) setSelected(v.trim());
                      libraryChanged.emit();
                    }}
                  />
                  <small class="muted block" title={m.precision ? `${m.precision.meaning}. ${m.precision.note}` : undefined}>
                    {[m.architecture, m.quantization, m.parameters ? `${count(m.parameters)} params` : null].filter(Boolean).join(" · ")}
                  </small>
                  {m.precision?.warning && (
                    <small class="badge warn" title={m.precision.warning}>
                      below 4 bits
                    </small>
                  )}
                </td>
                <td>
                  <Editable
                    label="description"
                    value={m.description}
                    placeholder="add a description"
                    onSave={async (v) => {
                      await api.edit(m.name, { description: v });
                      libraryChanged.emit();
                    }}
                  />
                </td>
                <td>{m.format}</td>
                <td>{size(m.size)}</td>
                <td>
                  <span class={`status ${m.loaded ? "loaded" : ""}`}>{m.loaded ? "loaded" : "not loaded"}</span>
                </td>
                <td class="actions">
                  {!DIFFUSION.includes(m.category) && <button onClick={() => setModal({ kind: "context", model: m })}>Context</button>}
                  {(DIFFUSION.includes(m.category) || m.category === "multimodal") && (
                    <button onClick={() => setModal({ kind: "components", model: m })}>Components</button>
                  )}
                  <button class="danger" onClick={() => setModal({ kind: "delete", model: m })}>
                    Delete
                  </button>
                </td>
              </tr>
              {expanded.has(m.name) && (
                <tr class="adapters">
                  <td />
                  <td colSpan={7}>
                    <dl class="facts" aria-label={`About ${m.name}`}>
                      {m.precision && (
                        <>
                          <dt>Precision</dt>
                          <dd>
                            {m.precision.meaning}
                            {m.precision.bits_per_weight != null &&
                              ` · ${m.precision.bits_per_weight} bits per weight${m.precision.measured ? " (measured)" : ""}`}
                            {` · ${m.precision.note}`}
                            {m.precision.warning && <span class="warning block">{m.precision.warning}</span>}
                          </dd>
                        </>
                      )}
                      <dt>Loaders</dt>
                      <dd>
                        {m.loaders_why.length
                          ? m.loaders_why.map((l) => (
                              <span class="block" key={l.name}>
                                <b>{l.name}</b>: {l.why}
                              </span>
                            ))
                          : "none: convert the model to GGUF or safetensors"}
                      </dd>
                    </dl>
                    <AdapterRows
                      model={m}
                      selected={adapters[m.name] ?? null}
                      onSelect={(a) => setAdapters({ ...adapters, [m.name]: a })}
                      onImport={() => setModal({ kind: "adapter", model: m })}
                      onDelete={(a) => setModal({ kind: "delete-adapter", model: m, adapter: a })}
                    />
                  </td>
                </tr>
              )}
            </Fragment>
          ))}
        </tbody>
      </table>

      {modal?.kind === "import" && (
        <ImportDialog
          onClose={close}
          onImported={(m) => {
            close();
            if ((CATEGORIES as readonly string[]).includes(m.category)) setCategory(m.category as Category);
            setSelected(m.name);
            libraryChanged.emit();
          }}
        />
      )}
      {modal?.kind === "create" && (
        <CreateDialog
          onClose={close}
          onCreated={(made) => {
            setCategory("chat");
            setSelected(made[0] ?? null);
            setFresh(new Set(made));
            libraryChanged.emit();
          }}
        />
      )}
      {modal?.kind === "environment" && <EngineMissing needs={modal.model.name} error={modal.error} onClose={close} />}
      {modal?.kind === "context" && <ContextDialog model={modal.model} onClose={close} onSaved={changed} />}
      {modal?.kind === "components" && <ComponentsDialog model={modal.model} onClose={close} onSaved={changed} />}
      {modal?.kind === "adapter" && <AdapterDialog model={modal.model} onClose={close} onSaved={changed} />}
      {modal?.kind === "delete" && (
        <Confirm
          title="Delete model"
          confirm="Delete"
          danger
          error={modalError}
          onCancel={close}
          onConfirm={() => void inModal(async () => (await api.remove(modal.model.name), changed()))}
        >
          <p>
            Delete <strong>{modal.model.name}</strong>
            {modal.model.adapters.length > 0 && ` and its ${modal.model.adapters.length} adapter(s)`} from the library? Its
            files stay where they are.
          </p>
        </Confirm>
      )}
      {modal?.kind === "delete-adapter" && (
        <Confirm
          title="Delete adapter"
          confirm="Delete"
          danger
          error={modalError}
          onCancel={close}
          onConfirm={() =>
            void inModal(async () => {
              await api.removeAdapter(modal.model.name, modal.adapter);
              if (adapters[modal.model.name] === modal.adapter) setAdapters({ ...adapters, [modal.model.name]: null });
              changed();
            })
          }
        >
          <p>
            Delete the adapter <strong>{modal.adapter}</strong> of {modal.model.name}? Its file stays.
          </p>
        </Confirm>
      )}
      {modal?.kind === "load" && <LoadConfirm {...modal} onCancel={close} onLoad={(force) => void load(modal.model, modal.adapter, force)} />}
      {modal?.kind === "unload" && (
        <Confirm title="Unload" confirm="Unload" onCancel={close} onConfirm={() => void unload(modal.models)}>
          <p>
            Unload <strong>{modal.models.map((m) => m.name).join(", ")}</strong>? Requests in flight finish first.
          </p>
        </Confirm>
      )}
    </section>
  );
}
