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
export type Deployment = schema.DeploymentOut;
export type Deployed = schema.Deployed;
export type BackendInfo = schema.BackendOut;
export type UsageReport = schema.UsageOut;
export type UsageTotal = schema.TotalOut;
export type Quotas = schema.QuotasOut;
export type Batch = schema.BatchOut;
export type CreatePlan = schema.PlanIn;
export type CreatePreview = schema.PreviewOut;
export type Creation = schema.CreationOut;
export type Preset = schema.PresetOut;
export type Worker = schema.WorkerOut;
export type Drain = schema.DrainOut;
export type Fits = schema.CheckOut;
export type TokenizerChoice = schema.TokenizerOut;
export type InstallJob = schema.InstallOut;
export type AdapterCheck = schema.AdapterCheckOut;
export type MonitorEvent = schema.EventOut;
export type ModelRoute = schema.RouteOut;
export type RouteTarget = schema.TargetIn;
// the /v1 answers that are not OpenAI's own (gateway/answers.py)
export type RerankAnswer = schema.RerankAnswer;
export type ClassifyAnswer = schema.ClassifyAnswer;
export type CaptionAnswer = schema.CaptionAnswer;
export type FaceAnswer = schema.FaceAnswer;
export type Voices = schema.VoiceList;

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
  "speech-to-text": "Speech to text",
  "text-to-speech": "Text to speech",
  captioning: "Captioning",
  upscale: "Upscale",
  face: "Face",
  video: "Video",
  classification: "Classification",
};
// diffusion models: pictures and clips share templates, components and LoRAs
export const DIFFUSION: readonly Category[] = ["image", "video"];

// -- the API key ----------------------------------------------------------------------------
// A server with API keys wants one on every call: the web UI keeps an admin key for the browser
// session (sessionStorage: gone when the tab closes) and sends it as a Bearer token.

const KEY = "modelyard-key";
type Listener = () => void;
const keyListeners = new Set<Listener>();
let needed = false;

export function apiKey(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setApiKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
  needed = !key && needed;
  for (const f of keyListeners) f();
}

/** Whether the server asked for a key this one does not have (a 401). */
export function keyNeeded(): boolean {
  return needed;
}

export function onKeyChange(f: Listener): () => void {
  keyListeners.add(f);
  return () => keyListeners.delete(f);
}

/** Whether ``key`` opens the management API (an admin key), without keeping it: ApiError if not. */
export async function checkKey(key: string): Promise<void> {
  const res = await fetch("/api/models", { headers: { Authorization: `Bearer ${key}` } });
  if (res.ok) return;
  let detail: Partial<ErrorDetail> = {};
  try {
    detail = ((await res.json()) as { error?: Partial<ErrorDetail> }).error ?? {};
  } catch {
    // not JSON: the status says enough
  }
  throw new ApiError(res.status, detail.code ?? "http_error", detail.message ?? res.statusText, detail.hint ?? null);
}

export function authorised(headers: Record<string, string> = {}): Record<string, string> {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

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

export async function failure(res: Response): Promise<ApiError> {
  if (res.status === 401 && !needed) {
    needed = true;
    for (const f of keyListeners) f();
  }
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
    headers: authorised(body === undefined ? {} : { "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/** POST a multipart form (files: audio for /v1/audio/*); JSON back. */
export async function postForm<T>(path: string, form: FormData): Promise<T> {
  const res = await fetch(path, { method: "POST", headers: authorised(), body: form });
  if (!res.ok) throw await failure(res);
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
  addAdapter: (name: string, path: string, adapter: string, description: string) =>
    post<Model>(`/api/models/${q(name)}/adapters`, { path, name: adapter || null, description }),
  checkAdapter: (name: string, path: string, signal?: AbortSignal) =>
    request<AdapterCheck>("POST", `/api/models/${q(name)}/adapters/check`, { path }, signal),
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
  search: (source: string, query: string, category: string, gguf = false) =>
    get<Hit[]>(
      `/api/hub/search?source=${q(source)}&q=${q(query)}${category ? `&category=${q(category)}` : ""}${gguf ? "&gguf=true" : ""}`,
    ),
  files: (source: string, ref: string) => get<Repo>(`/api/hub/files?source=${q(source)}&ref=${q(ref)}`),
  pull: (body: Record<string, unknown>) => post<Job>("/api/downloads", body),
  jobAction: (id: number, action: "pause" | "resume" | "cancel") => post<Job>(`/api/downloads/${id}/${action}`),
  forget: (id: number) => request<void>("DELETE", `/api/downloads/${id}`),
  backends: () => get<BackendInfo[]>("/api/backends"),
  deployments: () => get<Deployment[]>("/api/deployments"),
  deploy: (body: Record<string, unknown>) => post<Deployed>("/api/deployments", body),
  checkDeployment: (body: Record<string, unknown>) => post<Fits>("/api/deployments/check", body),
  editDeployment: (name: string, patch: Record<string, unknown>) =>
    request<Deployment>("PATCH", `/api/deployments/${q(name)}`, patch),
  deploymentAction: (name: string, action: "stop" | "start" | "reload") =>
    post<Deployment>(`/api/deployments/${q(name)}/${action}`),
  removeDeployment: (name: string) => request<void>("DELETE", `/api/deployments/${q(name)}`),
  usage: (since: string, by: "model" | "key") => get<UsageReport>(`/api/usage?since=${q(since)}&by=${by}`),
  quotas: () => get<Quotas>("/api/quotas"),
  setQuota: (key: string, loads: number, period: string) =>
    request<unknown>("PUT", `/api/quotas/${q(key)}`, { loads, period }),
  removeQuota: (key: string) => request<void>("DELETE", `/api/quotas/${q(key)}`),
  batches: () => get<Batch[]>("/api/batches"),
  cancelBatch: (id: string) => post<Batch>(`/api/batches/${q(id)}/cancel`),
  install: (backend: string, variant: string) => post<InstallJob>(`/api/backends/${q(backend)}/install`, { variant }),
  installs: () => get<InstallJob[]>("/api/installs"),
  monitorEvents: () => get<MonitorEvent[]>("/api/monitor/events"),
  presets: () => get<Preset[]>("/api/create/presets"),
  tokenizers: () => get<TokenizerChoice[]>("/api/create/tokenizers"),
  previewCreate: (plan: CreatePlan, signal?: AbortSignal) =>
    request<CreatePreview>("POST", "/api/create/preview", plan, signal),
  create: (plan: CreatePlan) => post<Creation>("/api/create", plan),
  creation: (id: number) => get<Creation>(`/api/create/jobs/${id}`),
  cancelCreation: (id: number) => request<Creation>("DELETE", `/api/create/jobs/${id}`),
  routes: () => get<ModelRoute[]>("/api/routes"),
  createRoute: (body: { name: string; description: string; targets: RouteTarget[] }) =>
    post<ModelRoute>("/api/routes", body),
  editRoute: (name: string, body: { description: string; targets: RouteTarget[] }) =>
    request<ModelRoute>("PUT", `/api/routes/${q(name)}`, body),
  removeRoute: (name: string) => request<void>("DELETE", `/api/routes/${q(name)}`),
  workers: () => get<Worker[]>("/api/workers"),
  editWorker: (name: string, body: Record<string, unknown>) => request<Worker>("PUT", `/api/workers/${q(name)}`, body),
  drainWorker: (name: string) => request<Drain>("POST", `/api/workers/${q(name)}/drain`),
  undrainWorker: (name: string) => request<Worker>("POST", `/api/workers/${q(name)}/undrain`),
  removeInstance: (id: number) => request<{ removed: number; instance: number }>("DELETE", `/api/instances/${id}`),
};

/** Server-sent events as JSON objects, read with fetch (EventSource cannot send a key);
 * reconnects after a pause when the stream ends or fails, until stopped. */
export function events<T>(path: string, onData: (data: T) => void): () => void {
  const abort = new AbortController();
  const run = async () => {
    while (!abort.signal.aborted) {
      try {
        const res = await fetch(path, { headers: authorised(), signal: abort.signal });
        if (!res.ok || !res.body) throw await failure(res);
        await dataLines(res.body, (data) => onData(JSON.parse(data) as T));
      } catch {
        // the server went away, or wants a key: look again in a while
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  };
  void run();
  return () => abort.abort();
}

/** The installs that run now, followed to their end (each state to ``onProgress``); an
 * ApiError when one fails. What a load the server answered with `engine_building` waits for. */
export async function installsEnded(onProgress: (job: InstallJob) => void): Promise<void> {
  for (const job of (await api.installs()).filter((j) => j.state === "running")) {
    const last = await new Promise<InstallJob>((resolve) => {
      const stop = events<InstallJob>(`/api/installs/${job.id}/events`, (j) => {
        onProgress(j);
        if (j.state !== "running") {
          stop();
          resolve(j);
        }
      });
    });
    if (last.state === "failed")
      throw new ApiError(500, "install_failed", `installing ${last.backend} failed: ${last.error}`, last.hint ?? null);
  }
}

/** Load a model; when the server answers that it started installing the engine, follow the
 * install (its progress, in words, to ``onProgress``), then load again. */
export async function loadModel(
  name: string,
  adapter: string | null,
  force: boolean,
  onProgress: (text: string) => void,
): Promise<void> {
  try {
    await api.load(name, adapter, force);
  } catch (e) {
    if (!(e instanceof ApiError && e.code === "engine_building")) throw e;
    await installsEnded((j) =>
      onProgress(`installing ${j.backend}, ${j.stage} (${Math.round((100 * j.step) / j.steps)}%)`),
    );
    await api.load(name, adapter, force);
  }
}

/** Calls ``onData`` with each event's data lines; resolves when the stream ends. */
async function dataLines(body: NonNullable<Response["body"]>, onData: (data: string) => boolean | void): Promise<void> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (line.startsWith("data:") && onData(line.slice(5).trim()) === false) {
          await reader.cancel();
          return;
        }
      }
    }
  }
}

/** POST to an OpenAI-style streaming endpoint and hand each `data:` chunk on. */
export async function streamChat(
  body: Record<string, unknown>,
  onChunk: (chunk: Record<string, unknown>) => void,
  signal: AbortSignal,
): Promise<void> {
  const res = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: authorised({ "Content-Type": "application/json" }),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!res.ok || !res.body) throw await failure(res);
  await dataLines(res.body, (data) => {
    if (data === "[DONE]") return false;
    const chunk = JSON.parse(data) as Record<string, unknown>;
    if (chunk.error) {
      const e = chunk.error as Partial<ErrorDetail>;
      throw new ApiError(500, e.code ?? "engine_error", e.message ?? "the engine failed", e.hint ?? null);
    }
    onChunk(chunk);
  });
}

/** Follow a text stream (an instance's log) line by line until aborted or it ends. */
export async function follow(path: string, onText: (text: string) => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(path, { headers: authorised(), signal });
  if (!res.ok || !res.body) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onText(value);
  }
}
