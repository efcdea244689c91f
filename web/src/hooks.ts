import { useState } from "preact/hooks";
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
