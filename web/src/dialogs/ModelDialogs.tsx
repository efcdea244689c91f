/** The library's dialogs that edit one model: its context, its components, a LoRA to import. */
import { useEffect, useState } from "preact/hooks";
import { api, DIFFUSION, type Model } from "../api";
import { Confirm } from "../components/Dialog";
import { PathInput } from "../components/PathInput";
import { size } from "../format";
import { useAttempt, usePathLook } from "../hooks";
import { message, useTemplates } from "../store";

const CONTEXT_PRESETS = [0, 2048, 4096, 8192, 16384, 32768, 131072];

type EditProps = { model: Model; onClose: () => void; onSaved: () => void };

export function ContextDialog({ model, onClose, onSaved }: EditProps) {
  const [value, setValue] = useState<string | null>(null); // null until the saved one arrives
  // truncation: null where the model's backend cannot cut a prompt (it counts no tokens)
  const [cut, setCut] = useState<boolean | null>(null);
  const { error, setError, busy, attempt } = useAttempt();
  useEffect(() => {
    api
      .settings(model.name)
      .then((s) => {
        setValue(String(s.saved.n_ctx ?? 0));
        if ("truncation" in s.effective) setCut(s.effective.truncation === "auto");
      })
      .catch((e: unknown) => (setValue("0"), setError(message(e))));
  }, [model.name]);
  const save = () => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) return setError("A whole number of tokens, or 0 for the model's own.");
    const options = cut === null ? { n_ctx: n } : { n_ctx: n, truncation: cut ? "auto" : "disabled" };
    void attempt(async () => (await api.saveSettings(model.name, options), onSaved()));
  };
  return (
    <Confirm title={`Context size of ${model.name}`} confirm="Save" busy={busy || value === null} error={error} onCancel={onClose} onConfirm={save}>
      <label>
        Context (tokens)
        <input type="number" min={0} aria-label="Context size" value={value ?? ""} disabled={value === null} onInput={(e) => setValue(e.currentTarget.value)} list="ctx-presets" />
        <datalist id="ctx-presets">
          {CONTEXT_PRESETS.map((n) => (
            <option key={n} value={n} />
          ))}
        </datalist>
      </label>
      <div class="presets">
        {CONTEXT_PRESETS.map((n) => (
          <button key={n} class="small" onClick={() => setValue(String(n))}>
            {n === 0 ? "model's own" : n.toLocaleString()}
          </button>
        ))}
      </div>
      <p class="muted">
        0 uses the model's own{model.context_length ? ` (${model.context_length.toLocaleString()} tokens)` : ""}. A larger context
        takes more memory. {model.loaded && "Reload the model to apply it."}
      </p>
      {cut !== null && (
        <label class="check">
          <input type="checkbox" checked={cut} onChange={(e) => setCut(e.currentTarget.checked)} />
          Cut a longer chat from the front instead of refusing it
        </label>
      )}
      {cut && <p class="muted">The oldest turns go; the system prompt and the latest turn stay. This applies at once.</p>}
    </Confirm>
  );
}

export function ComponentsDialog({ model, onClose, onSaved }: EditProps) {
  const template = useTemplates()[model.template ?? "sd_official"];
  const roles: string[] = DIFFUSION.includes(model.category) ? (template?.components ?? []) : ["mmproj"];
  const have = Object.fromEntries(model.components.map((c) => [c.role, c.path]));
  const [paths, setPaths] = useState<Record<string, string>>(have);
  const [caps, setCaps] = useState<string[]>(model.capabilities);
  const possible: string[] = template?.capabilities ?? [];
  const { error, busy, attempt } = useAttempt();
  const save = () =>
    void attempt(async () => {
      for (const role of roles) {
        const p = (paths[role] ?? "").trim();
        if (p && p !== have[role]) await api.setComponent(model.name, role, p);
        if (!p && have[role]) await api.removeComponent(model.name, role);
      }
      if (DIFFUSION.includes(model.category) && caps.join() !== model.capabilities.join()) {
        await api.edit(model.name, { capabilities: caps });
      }
      onSaved();
    });
  return (
    <Confirm title={`Components of ${model.name}`} confirm="Save" busy={busy} error={error} onCancel={onClose} onConfirm={save}>
      {model.template && <p class="muted">Template: {model.template}</p>}
      {DIFFUSION.includes(model.category) && (
        <div class="checks">
          {possible.map((c) => (
            <label key={c}>
              <input
                type="checkbox"
                checked={caps.includes(c)}
                onChange={(e) => setCaps(e.currentTarget.checked ? [...caps, c].sort() : caps.filter((x) => x !== c))}
              />
              {c}
            </label>
          ))}
        </div>
      )}
      {roles.map((role) => (
        <label key={role}>
          {role.toUpperCase()}
          <PathInput label={`${role} path`} value={paths[role] ?? ""} onInput={(v) => setPaths({ ...paths, [role]: v })} placeholder="none" />
        </label>
      ))}
      <p class="muted">Clear a path to remove the component.</p>
    </Confirm>
  );
}

export function AdapterDialog({ model, onClose, onSaved }: EditProps) {
  const [path, setPath] = useState("");
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const { error, busy, attempt } = useAttempt();
  // the compatibility check as the path is typed: whether it fits this base, and its name
  const { found: check, error: pathError } = usePathLook(path, (p, signal) => api.checkAdapter(model.name, p, signal));
  const save = () =>
    void attempt(async () => (await api.addAdapter(model.name, path.trim(), name.trim(), description.trim()), onSaved()));
  return (
    <Confirm
      title={`Import a LoRA for ${model.name}`}
      confirm="Import"
      busy={busy || !check?.fits}
      error={error}
      onCancel={onClose}
      onConfirm={save}
    >
      <label>
        LoRA file or folder
        <PathInput label="LoRA path" value={path} onInput={setPath} placeholder="/home/me/loras/adapter.gguf" />
      </label>
      <div aria-label="Compatibility" role="status">
        {pathError && <p class="error">{pathError}</p>}
        {check && !check.fits && <p class="error">Does not fit {model.name}: {check.reason}</p>}
        {check?.fits && (
          <p class="ok">
            Fits {model.name}: {check.format}, {size(check.size)}
          </p>
        )}
        {!check && !pathError && <p class="muted">It is checked against {model.name}: a LoRA made for another base is refused.</p>}
      </div>
      <label>
        Name
        <input aria-label="LoRA name" value={name} placeholder={check?.name ?? "from the file"} onInput={(e) => setName(e.currentTarget.value)} />
      </label>
      <label>
        Description
        <input aria-label="LoRA description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
      </label>
    </Confirm>
  );
}
