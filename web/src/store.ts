// State shared across pages: download jobs (from the server's event stream) and a "library
// changed" signal that pages listen to.
import { useEffect, useState } from "preact/hooks";
import { api, events, type Job, type Template, type TemplateInfo } from "./api";

type Listener = () => void;

class Signal {
  private listeners = new Set<Listener>();
  subscribe(f: Listener): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }
  emit(): void {
    for (const f of this.listeners) f();
  }
}

/** Fired when models were imported, edited, loaded or unloaded: pages reload what they show. */
export const libraryChanged = new Signal();

export function useLibraryVersion(): number {
  const [version, setVersion] = useState(0);
  useEffect(() => libraryChanged.subscribe(() => setVersion((v) => v + 1)), []);
  return version;
}

export const ACTIVE = ["queued", "running", "importing", "deploying"];

class Jobs extends Signal {
  jobs = new Map<number, Job>();
  private started = false;

  start(): void {
    if (this.started) return;
    this.started = true;
    events<Job>("/api/downloads/events", (job) => {
      const before = this.jobs.get(job.id);
      this.jobs.set(job.id, job);
      if (job.state === "completed" && before && before.state !== "completed") libraryChanged.emit();
      this.emit();
    });
  }
  put(job: Job): void {
    this.jobs.set(job.id, job);
    this.emit();
  }
  drop(id: number): void {
    this.jobs.delete(id);
    this.emit();
  }
  list(): Job[] {
    return [...this.jobs.values()].sort((a, b) => b.id - a.id);
  }
}

export const jobs = new Jobs();

export function useJobs(): Job[] {
  const [list, setList] = useState<Job[]>(() => jobs.list());
  useEffect(() => {
    jobs.start();
    setList(jobs.list());
    return jobs.subscribe(() => setList(jobs.list()));
  }, []);
  return list;
}

export function message(e: unknown): string {
  if (e && typeof e === "object" && "text" in e) return String((e as { text: string }).text);
  return e instanceof Error ? e.message : String(e);
}

let templatesOnce: Promise<Record<string, TemplateInfo>> | null = null;

/** The image model templates (the components each takes, its default capabilities), asked of the
 * server once; empty until they arrive. */
export function useTemplates(): Partial<Record<Template, TemplateInfo>> {
  const [templates, setTemplates] = useState<Partial<Record<Template, TemplateInfo>>>({});
  useEffect(() => {
    templatesOnce ??= api.templates().then((list) => Object.fromEntries(list.map((t) => [t.name, t])));
    templatesOnce.then(setTemplates).catch(() => {
      templatesOnce = null;
    });
  }, []);
  return templates;
}
