import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, type Group, type Hit, type Repo } from "../api";
import { count, size } from "../format";
import { useAttempt } from "../hooks";

/** Search a hub (Hugging Face, ModelScope) or name a repo (also Ollama's, which has no search);
 * the hits are buttons that open a repo. ``children`` go in the search row (filters). */
export function HubSearch({
  source,
  category = "",
  gguf = false,
  current,
  busy,
  onOpen,
  children,
}: {
  source: string;
  category?: string;
  gguf?: boolean;
  current: string | null;
  busy: boolean;
  onOpen: (ref: string) => void;
  children?: ComponentChildren;
}) {
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState<Hit[] | null>(null);
  const { error, busy: searching, attempt } = useAttempt();
  const ollama = source === "ollama"; // the Ollama registry has no search
  const search = () =>
    attempt(async () => {
      if (ollama) return onOpen(query.trim());
      setHits(await api.search(source, query.trim(), category, gguf));
    });
  useEffect(() => setHits(null), [source]);
  useEffect(() => {
    if (hits !== null && query.trim()) void search();
  }, [category, gguf]); // a filter changed: search again

  return (
    <>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void search();
        }}
      >
        <input
          type="search"
          aria-label="Search"
          value={query}
          placeholder={ollama ? "a name, e.g. llama3.2:1b" : "search, or org/model"}
          onInput={(e) => setQuery(e.currentTarget.value)}
        />
        {children}
        <button type="submit" disabled={busy || searching}>
          {ollama ? "Show files" : "Search"}
        </button>
        {!ollama && query.includes("/") && (
          <button type="button" disabled={busy} onClick={() => onOpen(query.trim())}>
            Open repo
          </button>
        )}
      </form>
      {error && <p class="error">{error}</p>}
      {hits && (
        <ul class="hits" aria-label="Search results">
          {hits.length === 0 && <li class="muted">Nothing found.</li>}
          {hits.map((h) => (
            <li key={h.repo}>
              <button class={`hit${current === h.repo ? " current" : ""}`} onClick={() => onOpen(h.repo)}>
                <strong>{h.repo}</strong>
                <small>
                  {h.task ?? "model"}
                  {h.gguf && " · GGUF"} · ↓ {count(h.downloads)} · ♥ {count(h.likes)}
                </small>
              </button>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

export const ALL = "__all__";

/** A repo's files by group (a quantization with its shards, or a kind of file), or all of them:
 * one to pick. A GGUF repo's mmproj comes with any quantization, so it is not offered alone. */
export function FileGroups({
  groups,
  gguf,
  pick,
  onPick,
  legend,
}: {
  groups: Group[];
  gguf: boolean;
  pick: string;
  onPick: (name: string) => void;
  legend: string;
}) {
  return (
    <fieldset class="groups">
      <legend>{legend}</legend>
      {groups
        .filter((g) => g.name !== "mmproj" || !gguf)
        .map((g) => (
          <label key={g.name} class="group">
            <input type="radio" name="pick" checked={pick === g.name} onChange={() => onPick(g.name)} />
            <span>{g.name}</span>
            <small>
              {size(g.size)}
              {g.shards > 1 && ` · ${g.shards} shards`}
              {g.files.length > 1 && g.shards <= 1 && ` · ${g.files.length} files`}
            </small>
          </label>
        ))}
      <label class="group">
        <input type="radio" name="pick" checked={pick === ALL} onChange={() => onPick(ALL)} />
        <span>All files</span>
        <small>{size(groups.reduce((n, g) => n + g.size, 0))}</small>
      </label>
    </fieldset>
  );
}

/** What a pick asks a download for: a quantization (with its shards and mmproj), the files of
 * another group, or everything. */
export function chosenFiles(groups: Group[], pick: string): { quantization: string | null; files: string[]; all: boolean } {
  const group = groups.find((g) => g.name === pick);
  const quantization = group && group.name !== "other" && group.name !== "mmproj" ? group.name : null;
  return { quantization, files: group && !quantization ? group.files.map((f) => f.path) : [], all: pick === ALL };
}

/** The group a repo's files start picked at: Q4_K_M of a GGUF repo (else its first), else all. */
export function firstPick(gguf: boolean, groups: Group[]): string {
  const quant = groups.find((g) => g.name === "Q4_K_M") ?? groups.find((g) => g.name !== "mmproj");
  return gguf && quant ? quant.name : ALL;
}

/** The repo a dialog has open, with the files picked: ``open(ref)`` looks it up on ``source``
 * (through ``run``, which keeps its error). */
export function useRepo(source: string, run: (f: () => Promise<unknown>) => Promise<void>) {
  const [repo, setRepo] = useState<Repo | null>(null);
  const [ref, setRef] = useState("");
  const [pick, setPick] = useState("");
  const open = (r: string) =>
    run(async () => {
      const found = await api.files(source, r);
      setRepo(found);
      setRef(r);
      setPick(firstPick(found.gguf, found.groups));
    });
  return { repo, ref, pick, setPick, open, close: () => setRepo(null) };
}
