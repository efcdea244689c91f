import { useEffect, useState } from "preact/hooks";
import { message } from "./store";

/** Runs an action, keeps the message of its error (cleared when the next one starts) and
 * whether one is running. */
export function useAttempt() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const attempt = async (f: () => Promise<unknown>): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy(false);
    }
  };
  return { error, setError, busy, attempt };
}

/** ``load()`` now and every ``ms`` (again whenever ``deps`` change): its last answer, or the
 * message of its last failure. */
export function usePolled<T>(load: () => Promise<T>, deps: unknown[], ms = 2000) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stop = false;
    const tick = async () => {
      try {
        const found = await load();
        if (!stop) (setData(found), setError(null));
      } catch (e) {
        if (!stop) setError(message(e));
      }
    };
    void tick();
    const timer = window.setInterval(() => void tick(), ms);
    return () => {
      stop = true;
      window.clearInterval(timer);
    };
  }, deps);
  return { data, error, setError };
}

/** ``look(path)`` for a path as it is typed (300 ms after the last key; nothing for an empty path
 * or a folder with its slash, whose entries the path field lists): its answer, or the message of
 * its failure. */
export function usePathLook<T>(path: string, look: (path: string, signal: AbortSignal) => Promise<T>) {
  const [found, setFound] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setFound(null);
    setError(null);
    const trimmed = path.trim();
    if (!trimmed || trimmed.endsWith("/")) return;
    const abort = new AbortController();
    const timer = window.setTimeout(() => {
      look(trimmed, abort.signal)
        .then(setFound)
        .catch((e: unknown) => abort.signal.aborted || setError(message(e)));
    }, 300);
    return () => {
      window.clearTimeout(timer);
      abort.abort();
    };
  }, [path]);
  return { found, error };
}
