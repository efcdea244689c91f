// The server's HTTP API, typed: /api for the library, runtime, hubs, downloads and monitor; /v1
// for the OpenAI-compatible endpoint the playground talks to. Every type and vocabulary comes from
// the server's OpenAPI schema (src/generated/api.ts, which scripts/build-web generates).

import { categoryValues, templateValues } from "./generated/api";
import type * as schema from "./generated/api";

export type Category = schema.Category;
export type Template = schema.Template;
export type Model = schema.ModelOut;
export type Inspection = schema.InspectionOut;
export type PathEntry = schema.PathEntryOut;
export type Settings = schema.SettingsOut;
export type Breakdown = schema.BreakdownOut;
export type Estimate = schema.EstimateOut;
export type Instance = schema.InstanceOut;
export type Hit = schema.HitOut;
export type Group = schema.GroupOut;
export type Repo = schema.RepoOut;
export type Job = schema.JobOut;
export type Gpu = schema.GpuOut;
export type Sample = schema.SampleOut;
export type TemplateInfo = schema.TemplateOut;
export type ErrorDetail = schema.ErrorDetail;

export const CATEGORIES = categoryValues;
export const TEMPLATES = templateValues;
// What people read for each category: the compiler asks for a label when the server gains one.
export const CATEGORY_LABELS: Record<Category, string> = {
  chat: "Chat",
  embedding: "Embedding",
  rerank: "Rerank",
  multimodal: "Multimodal",
  image: "Image",
  audio: "Audio",
  classification: "Classification",
};

/** An error the server answered: its kind (code), what went wrong and what to do. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
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
    return new ApiError(res.status, "http_error", `${res.status} ${res.statusText}`);
  }
  const error = (body as { error?: Partial<ErrorDetail> }).error;
  if (error && typeof error === "object") {
    return new ApiError(res.status, error.code ?? "error", error.message ?? res.statusText, error.hint ?? null);
  }
  return new ApiError(res.status, "http_error", JSON.stringify(body));
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
  templates: () => get<TemplateInfo[]>("/api/templates"),
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
          const e = chunk.error as Partial<ErrorDetail>;
          throw new ApiError(500, e.code ?? "engine_error", e.message ?? "the engine failed", e.hint ?? null);
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
