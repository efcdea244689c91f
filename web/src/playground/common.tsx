/** What the playground's modes share: a call that keeps its result, texts one per line. */
import { useState } from "preact/hooks";
import { useAttempt } from "../hooks";

/** An attempt that keeps its result. */
export function useCall<T>() {
  const [result, setResult] = useState<T | null>(null);
  const { error, busy, attempt } = useAttempt();
  const call = (f: () => Promise<T>) => attempt(async () => setResult(await f()));
  return { result, error, busy, call };
}

/** The non-empty lines of a text. */
export const lines = (text: string) => text.split("\n").map((s) => s.trim()).filter(Boolean);

interface TextsFormProps {
  text: string;
  onText: (text: string) => void;
  action: string;
  doing: string;
  ready: boolean;
  busy: boolean;
  error: string | null;
  onRun: () => Promise<void>;
}

/** Texts, one per line, the button that sends them, and what went wrong. */
export function TextsForm({ text, onText, action, doing, ready, busy, error, onRun }: TextsFormProps) {
  return (
    <>
      <label>
        Texts, one per line
        <textarea aria-label="Texts" rows={5} value={text} onInput={(e) => onText(e.currentTarget.value)} />
      </label>
      <button class="primary" disabled={!ready || busy} onClick={() => void onRun()}>
        {busy ? doing : action}
      </button>
      {error && <p class="error">{error}</p>}
    </>
  );
}
