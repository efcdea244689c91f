import { useState } from "preact/hooks";
import { useAttempt } from "../hooks";

interface Props {
  value: string;
  label: string;
  placeholder?: string;
  onSave: (value: string) => Promise<void>;
}

/** Text that becomes an input on click; Enter or leaving the field saves, Escape cancels. */
export function Editable({ value, label, placeholder, onSave }: Props) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(value);
  const { error, setError, busy: saving, attempt } = useAttempt();

  const save = async () => {
    if (saving) return;
    if (draft === value) return setEditing(false);
    await attempt(async () => (await onSave(draft), setEditing(false)));
  };

  if (!editing)
    return (
      <span
        class={`editable${value ? "" : " empty"}`}
        tabIndex={0}
        role="button"
        aria-label={`Edit ${label}`}
        title="Click to edit"
        onClick={() => {
          setDraft(value);
          setEditing(true);
        }}
        onKeyDown={(e) => e.key === "Enter" && (setDraft(value), setEditing(true))}
      >
        {value || placeholder}
      </span>
    );
  return (
    <span class="editing">
      <input
        type="text"
        aria-label={label}
        value={draft}
        disabled={saving}
        ref={(el) => {
          if (el && !saving && document.activeElement !== el) el.focus();
        }}
        onInput={(e) => setDraft(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter") void save();
          if (e.key === "Escape") {
            setEditing(false);
            setError(null);
          }
        }}
        onBlur={() => void save()}
      />
      {error && <span class="error">{error}</span>}
    </span>
  );
}
