import { useEffect, useState } from "preact/hooks";
import { api, type Model, type Template, TEMPLATES } from "../api";
import { CategorySelect } from "../components/CategorySelect";
import { Dialog } from "../components/Dialog";
import { PathInput } from "../components/PathInput";
import { count, size } from "../format";
import { useAttempt, usePathLook } from "../hooks";
import { useTemplates } from "../store";

interface Props {
  onClose: () => void;
  onImported: (model: Model) => void;
}

/** Import a file or folder from the server's disk: what it is shows as you type the path. */
export function ImportDialog({ onClose, onImported }: Props) {
  const [path, setPath] = useState("");
  const [category, setCategory] = useState("");
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const templates = useTemplates();
  const [template, setTemplate] = useState<Template>("sd_official");
  const [capabilities, setCapabilities] = useState<string[] | null>(null); // null: the template's
  const taken = templates[template];
  const roles: string[] = taken?.components ?? [];
  const possible: string[] = taken?.capabilities ?? [];
  const chosen = capabilities ?? possible;
  const [components, setComponents] = useState<Record<string, string>>({});
  const { error, busy, attempt } = useAttempt();

  const { found, error: pathError } = usePathLook(path, (p, signal) => api.inspect(p, signal));
  useEffect(() => {
    // what was found fills the fields it decides
    if (!found) return;
    setCategory(found.category ?? "");
    if (found.template) {
      setTemplate(found.template);
      setCapabilities(null);
    }
  }, [found]);

  const image = category === "image" || category === "video";
  const submit = () =>
    attempt(async () => {
      const picked = Object.fromEntries(
        Object.entries(components).filter(([role, p]) => p.trim() && roles.includes(role)),
      );
      const model = await api.importModel({
        path: path.trim(),
        name: name.trim() || null,
        description,
        category: category || null,
        ...(image ? { template, capabilities: chosen, components: picked } : {}),
      });
      onImported(model);
    });

  return (
    <Dialog
      title="Import a model"
      onClose={onClose}
      footer={
        <>
          <button onClick={onClose}>Cancel</button>
          <button class="primary" disabled={busy || !path.trim() || !!pathError} onClick={() => void submit()}>
            {busy ? "Importing…" : "Import"}
          </button>
        </>
      }
    >
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <label>
          File or folder on the server
          <PathInput label="Model path" value={path} onInput={setPath} placeholder="/home/me/models/model.gguf" />
        </label>
        {pathError && <p class="error" role="alert">{pathError}</p>}
        {found && (
          <dl class="facts" aria-label="What was found">
            <dt>Format</dt>
            <dd>
              {found.format}
              {found.quantization && ` · ${found.quantization}`}
            </dd>
            <dt>Architecture</dt>
            <dd>{found.architecture ?? "unknown"}</dd>
            <dt>Size</dt>
            <dd>
              {size(found.size)}
              {found.parameters != null && ` · ${count(found.parameters)} parameters`}
              {found.files.length > 1 && ` · ${found.files.length} files`}
            </dd>
            {found.context_length != null && (
              <>
                <dt>Context</dt>
                <dd>{found.context_length.toLocaleString()} tokens</dd>
              </>
            )}
            <dt>Detected</dt>
            <dd>
              {found.category ?? found.role ?? found.kind} <small>(from {found.category_from})</small>
            </dd>
            {found.companions.length > 0 && (
              <>
                <dt>With it</dt>
                <dd>{found.companions.map((c) => c.split("/").pop()).join(", ")}</dd>
              </>
            )}
          </dl>
        )}
        {found?.warnings.map((w) => (
          <p class="warning" key={w}>
            {w}
          </p>
        ))}
        <label>
          Category
          <CategorySelect value={category} onChange={setCategory} empty={found ? "as detected" : "detect from the files"} />
        </label>
        <label>
          Name
          <input type="text" aria-label="Name" value={name} placeholder="from the file name" onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Description
          <input type="text" aria-label="Description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </label>
        {image && (
          <fieldset>
            <legend>Image model</legend>
            <label>
              Template
              <select
                aria-label="Template"
                value={template}
                onChange={(e) => {
                  setTemplate(e.currentTarget.value as Template);
                  setCapabilities(null);
                }}
              >
                {TEMPLATES.map((t) => (
                  <option key={t} value={t}>
                    {t}
                  </option>
                ))}
              </select>
            </label>
            <div class="checks">
              {possible.map((c) => (
                <label key={c}>
                  <input
                    type="checkbox"
                    checked={chosen.includes(c)}
                    onChange={(e) =>
                      setCapabilities(e.currentTarget.checked ? [...chosen, c] : chosen.filter((x) => x !== c))
                    }
                  />
                  {c}
                </label>
              ))}
            </div>
            {roles.map((role) => (
              <label key={role}>
                {role.toUpperCase()} <small>(optional)</small>
                <PathInput
                  label={`${role} path`}
                  value={components[role] ?? ""}
                  onInput={(v) => setComponents({ ...components, [role]: v })}
                  placeholder="a file or folder"
                />
              </label>
            ))}
          </fieldset>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </Dialog>
  );
}
