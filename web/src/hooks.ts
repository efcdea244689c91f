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
