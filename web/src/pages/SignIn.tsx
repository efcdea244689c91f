import { useState } from "preact/hooks";
import { ApiError, checkKey, setApiKey } from "../api";

/** The server needs an API key: ask for an admin key, check it, keep it for this browser session. */
export function SignIn() {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      await checkKey(key.trim());
      setApiKey(key.trim());
      location.reload(); // every page starts again with the key
    } catch (e) {
      const refused = e instanceof ApiError && e.status === 403;
      setError(refused ? "This key reaches /v1 only: the web UI needs an admin key." : e instanceof ApiError ? e.message : String(e));
      setBusy(false);
    }
  };
  return (
    <section class="sign-in" aria-label="Sign in">
      <h1>This modelyard server needs an API key</h1>
      <p class="muted">
        Paste an admin key. It stays in this browser tab only. On the server's machine,{" "}
        <code>modelyard keys create NAME --scope admin</code> makes one.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <input type="password" aria-label="API key" placeholder="my-…" autocomplete="off" value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        <button type="submit" class="primary" disabled={!key.trim() || busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}
