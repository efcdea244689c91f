/** A library model's LoRA adapters: pick one to load with, import one, delete one. */
import { type Model } from "../api";
import { size } from "../format";

export function AdapterRows(props: {
  model: Model;
  selected: string | null;
  onSelect: (adapter: string | null) => void;
  onImport: () => void;
  onDelete: (adapter: string) => void;
}) {
  const { model, selected } = props;
  return (
    <div class="adapter-list" aria-label={`Adapters of ${model.name}`}>
      <div class="line">
        <strong>LoRA adapters</strong>
        <span class="spacer" />
        <button onClick={props.onImport}>Import LoRA</button>
      </div>
      {model.adapters.length === 0 && <p class="muted">None. A LoRA made for this base can be imported.</p>}
      {model.adapters.length > 0 && (
        <label class="adapter">
          <input type="radio" name={`adapter-${model.name}`} checked={selected === null} onChange={() => props.onSelect(null)} />
          <span>none</span>
        </label>
      )}
      {model.adapters.map((a) => (
        <div class="adapter" key={a.name}>
          <label>
            <input type="radio" name={`adapter-${model.name}`} checked={selected === a.name} onChange={() => props.onSelect(a.name)} />
            <span>{a.name}</span>
          </label>
          <small class="muted">
            {a.format} · {size(a.size)}
          </small>
          <button class="danger small" onClick={() => props.onDelete(a.name)}>
            Delete
          </button>
        </div>
      ))}
    </div>
  );
}
