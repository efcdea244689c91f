// The server's HTTP API, typed: /api for the library, runtime, hubs, downloads and monitor; /v1
// for the OpenAI-compatible endpoint the playground talks to.

export const CATEGORIES = ["chat", "embedding", "rerank", "multimodal", "image"] as const;
export type Category = (typeof CATEGORIES)[number];
export const CATEGORY_LABELS: Record<Category, string> = {
  chat: "Chat",
  embedding: "Embedding",
  rerank: "Rerank",
  multimodal: "Multimodal",
  image: "Image",
};
export const TEMPLATES = ["sd_official", "flux", "video"] as const;
export const TEMPLATE_COMPONENTS: Record<string, string[]> = {
  sd_official: ["vae", "clip_l", "clip_g", "t5xxl"],
  flux: ["vae", "clip_l", "t5xxl"],
  video: ["vae", "t5xxl"],
};
export const CAPABILITIES: Record<string, string[]> = {
  sd_official: ["text-to-image", "image-to-image"],
  flux: ["text-to-image", "image-to-image"],
  video: ["video"],
};

export interface FileOut {
  path: string;
  size: number;
}
export interface ComponentOut {
  role: string;
  path: string;
  size: number;
}
export interface AdapterOut {
  name: string;
  format: string;
  path: string;
  size: number;
  description: string;
}
export interface Model {
  name: string;
  description: string;
  category: string;
  format: string;
  path: string;
  size: number;
  quantization: string | null;
  architecture: string | null;
  parameters: number | null;
  context_length: number | null;
  template: string | null;
  capabilities: string[];
  loaders: string[];
  loaded: boolean;
  source: string;
  source_repo: string | null;
  files: FileOut[];
  components: ComponentOut[];
  adapters: AdapterOut[];
}
export interface Inspection {
  path: string;
  format: string;
  kind: string;
  category: string | null;
  category_from: string;
  architecture: string | null;
  quantization: string | null;
  parameters: number | null;
  context_length: number | null;
  role: string | null;
  template: string | null;
  size: number;
  files: FileOut[];
  warnings: string[];
  companions: string[];
}
export interface PathEntry {
  path: string;
  name: string;
  folder: boolean;
  size: number | null;
  model: boolean;
}
export interface Settings {
  backend: string;
  saved: Record<string, unknown>;
  effective: Record<string, unknown>;
}
export interface Breakdown {
  weights: number;
  kv_cache: number;
  compute: number;
  overhead: number;
  total: number;
}
export interface Estimate {
  model: string;
  runtime: string;
  n_ctx: number;
  n_gpu_layers: number;
  ram: Breakdown;
  vram: Breakdown[];
  free_ram: number;
  fits: boolean;
  max_ctx: number | null;
  free_vram: number[];
}
export interface Instance {
  id: number;
  model: string;
  adapter: string | null;
  state: string;
  url: string | null;
  pid: number | null;
  starts: number;
  restarts: number;
  memory: number;
  cpu_percent: number;
  error: string | null;
}
export interface Hit {
  source: string;
  repo: string;
  downloads: number;
  likes: number;
  task: string | null;
  gguf: boolean;
  updated: string | null;
}
export interface Group {
  name: string;
  size: number;
  shards: number;
  files: { path: string; size: number | null }[];
}
export interface Repo {
  source: string;
  repo: string;
  revision: string;
  gguf: boolean;
  task: string | null;
  groups: Group[];
}
export interface Job {
  id: number;
  ref: string;
  source: string;
  repo: string;
  state: string;
  bytes_total: number;
  bytes_done: number;
  files_total: number;
  files_done: number;
  speed: number;
  eta: number | null;
  destination: string;
  files: string[];
  models: string[];
  error: string | null;
  hint: string | null;
}
export interface Gpu {
  index: number;
  name: string;
  vendor: string;
  memory_total: number | null;
  memory_used: number | null;
  temperature: number | null;
}
export interface Sample {
  at: number;
  cpu_percent: number;
  memory_used: number;
  memory_total: number;
  memory_percent: number;
  gpus?: Gpu[];
}

/** An error the server answered: its type, what went wrong and what to do. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly hint: string | null = null,
  ) {
    super(message);
  }
  get text(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

async function failure(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    return new ApiError(res.status, "HttpError", `${res.status} ${res.statusText}`);
  }
  const error = (body as { error?: unknown; detail?: unknown }).error;
  if (error && typeof error === "object") {
    const e = error as { type?: string; message?: string; hint?: string | null };
    return new ApiError(res.status, e.type ?? "Error", e.message ?? res.statusText, e.hint ?? null);
  }
  if (typeof error === "string") return new ApiError(res.status, "Error", error);
  return new ApiError(res.status, "HttpError", JSON.stringify(body));
}

export async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => request<T>("GET", path, undefined, signal);
export const post = <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {});
const q = encodeURIComponent;

export const api = {
  models: (category?: string) => get<Model[]>(`/api/models${category ? `?category=${q(category)}` : ""}`),
  importModel: (body: Record<string, unknown>) => post<Model>("/api/models", body),
  edit: (name: string, patch: Record<string, unknown>) => request<Model>("PATCH", `/api/models/${q(name)}`, patch),
  remove: (name: string) => request<void>("DELETE", `/api/models/${q(name)}`),
  settings: (name: string) => get<Settings>(`/api/models/${q(name)}/settings`),
  saveSettings: (name: string, options: Record<string, unknown>) =>
    request<Settings>("PUT", `/api/models/${q(name)}/settings`, { options }),
  addAdapter: (name: string, path: string) => post<Model>(`/api/models/${q(name)}/adapters`, { path }),
  removeAdapter: (name: string, adapter: string) =>
    request<Model>("DELETE", `/api/models/${q(name)}/adapters/${q(adapter)}`),
  setComponent: (name: string, role: string, path: string) =>
    request<Model>("PUT", `/api/models/${q(name)}/components/${q(role)}`, { path }),
  removeComponent: (name: string, role: string) =>
    request<Model>("DELETE", `/api/models/${q(name)}/components/${q(role)}`),
  inspect: (path: string, signal?: AbortSignal) =>
    request<Inspection>("POST", "/api/inspect", { path }, signal),
  paths: (prefix: string, signal?: AbortSignal) => get<PathEntry[]>(`/api/paths?prefix=${q(prefix)}`, signal),
  estimate: (name: string) => get<Estimate>(`/api/models/${q(name)}/estimate`),
  load: (name: string, adapter: string | null, force: boolean) =>
    post<unknown>(`/api/models/${q(name)}/load`, { adapter, force }),
  unload: (name: string) => post<void>(`/api/models/${q(name)}/unload`),
  instances: () => get<Instance[]>("/api/instances"),
  search: (source: string, query: string, category: string) =>
    get<Hit[]>(`/api/hub/search?source=${q(source)}&q=${q(query)}${category ? `&category=${q(category)}` : ""}`),
  files: (source: string, ref: string) => get<Repo>(`/api/hub/files?source=${q(source)}&ref=${q(ref)}`),
  pull: (body: Record<string, unknown>) => post<Job>("/api/downloads", body),
  jobAction: (id: number, action: "pause" | "resume" | "cancel") => post<Job>(`/api/downloads/${id}/${action}`),
  forget: (id: number) => request<void>("DELETE", `/api/downloads/${id}`),
};

/** Server-sent events as JSON objects; reconnects on its own (EventSource does). */
export function events<T>(path: string, onData: (data: T) => void): () => void {
  const source = new EventSource(path);
  source.onmessage = (e: MessageEvent<string>) => onData(JSON.parse(e.data) as T);
  return () => source.close();
}

/** POST to an OpenAI-style streaming endpoint and hand each `data:` chunk on. */
export async function streamChat(
  body: Record<string, unknown>,
  onChunk: (chunk: Record<string, unknown>) => void,
  signal: AbortSignal,
): Promise<void> {
  const res = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!res.ok || !res.body) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data) as Record<string, unknown>;
        if (chunk.error) {
          const e = chunk.error as { message?: string; type?: string };
          throw new ApiError(500, e.type ?? "EngineError", e.message ?? "the engine failed");
        }
        onChunk(chunk);
      }
    }
  }
}

/** Follow a text stream (an instance's log) line by line until aborted or it ends. */
export async function follow(path: string, onText: (text: string) => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(path, { signal });
  if (!res.ok || !res.body) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onText(value);
  }
}
