import { useEffect, useRef, useState } from "preact/hooks";
import { api, type PathEntry } from "../api";
import { size } from "../format";

interface Props {
  value: string;
  onInput: (value: string) => void;
  placeholder?: string;
  label: string;
  folders?: boolean; // offer folders only (a save folder)
}

/** A path on the server's disk, with completion from /api/paths: arrows pick, Tab or Enter takes. */
export function PathInput({ value, onInput, placeholder, label, folders }: Props) {
  const [entries, setEntries] = useState<PathEntry[]>([]);
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(0);
  const timer = useRef<number>();

  useEffect(() => {
    if (!open || !value) return setEntries([]);
    const abort = new AbortController();
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => {
      api
        .paths(value, abort.signal)
        .then((list) => {
          setEntries(folders ? list.filter((e) => e.folder) : list);
          setActive(0);
        })
        .catch(() => setEntries([]));
    }, 120);
    return () => abort.abort();
  }, [value, open, folders]);

  const take = (e: PathEntry) => {
    onInput(e.folder ? `${e.path}/` : e.path);
    setOpen(true);
  };
  const key = (ev: KeyboardEvent) => {
    if (!entries.length) return;
    if (ev.key === "ArrowDown") setActive((a) => (a + 1) % entries.length);
    else if (ev.key === "ArrowUp") setActive((a) => (a - 1 + entries.length) % entries.length);
    else if (ev.key === "Tab" || (ev.key === "Enter" && open)) take(entries[active]);
    else if (ev.key === "Escape") setOpen(false);
    else return;
    ev.preventDefault();
    ev.stopPropagation();
  };

  return (
    <div class="path-input">
      <input
        type="text"
        aria-label={label}
        value={value}
        placeholder={placeholder}
        spellcheck={false}
        autocomplete="off"
        onInput={(e) => {
          onInput(e.currentTarget.value);
          setOpen(true);
        }}
        onFocus={() => setOpen(true)}
        onBlur={() => window.setTimeout(() => setOpen(false), 150)}
        onKeyDown={key}
      />
      {open && entries.length > 0 && (
        <ul class="completions" role="listbox">
          {entries.map((e, i) => (
            <li
              key={e.path}
              role="option"
              aria-selected={i === active}
              class={`${i === active ? "active" : ""}${e.model ? " model" : ""}`}
              onMouseDown={(ev) => {
                ev.preventDefault();
                take(e);
              }}
            >
              <span>{e.folder ? `${e.name}/` : e.name}</span>
              <small>{e.model ? "model" : e.folder ? "" : size(e.size)}</small>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
