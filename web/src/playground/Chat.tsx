/** The playground's chat: a conversation streamed from /v1/chat/completions. */
import { useRef, useState } from "preact/hooks";
import { streamChat } from "../api";
import { message } from "../store";

interface Message {
  role: "user" | "assistant";
  content: string;
}

export function Chat({ model }: { model: string }) {
  const [system, setSystem] = useState("You are a helpful assistant.");
  const [temperature, setTemperature] = useState(0.7);
  const [topP, setTopP] = useState(0.95);
  const [maxTokens, setMaxTokens] = useState(256);
  const [seed, setSeed] = useState("");
  const [messages, setMessages] = useState<Message[]>([]);
  const [draft, setDraft] = useState("");
  const [stats, setStats] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const running = useRef<AbortController | null>(null);
  const [busy, setBusy] = useState(false);

  const send = async () => {
    const text = draft.trim();
    if (!text || !model || busy) return;
    const history: Message[] = [...messages, { role: "user", content: text }];
    setMessages([...history, { role: "assistant", content: "" }]);
    setDraft("");
    setError(null);
    setStats(null);
    setBusy(true);
    const abort = new AbortController();
    running.current = abort;
    const started = performance.now();
    let reply = "";
    let tokens = 0;
    try {
      await streamChat(
        {
          model,
          messages: [...(system.trim() ? [{ role: "system", content: system }] : []), ...history],
          temperature,
          top_p: topP,
          max_tokens: maxTokens,
          ...(seed ? { seed: Number(seed) } : {}),
        },
        (chunk) => {
          const choices = chunk.choices as { delta?: { content?: string } }[] | undefined;
          const piece = choices?.[0]?.delta?.content ?? "";
          if (!piece) return;
          tokens += 1;
          reply += piece;
          setMessages([...history, { role: "assistant", content: reply }]);
        },
        abort.signal,
      );
      const seconds = (performance.now() - started) / 1000;
      setStats(`${tokens} chunks in ${seconds.toFixed(1)} s`);
    } catch (e) {
      if (!abort.signal.aborted) setError(message(e));
      if (!reply) setMessages(history);
    } finally {
      setBusy(false);
      running.current = null;
    }
  };

  return (
    <div class="chat">
      <aside class="params" aria-label="Chat settings">
        <label>
          System prompt
          <textarea aria-label="System prompt" rows={4} value={system} onInput={(e) => setSystem(e.currentTarget.value)} />
        </label>
        <label>
          Temperature <output>{temperature}</output>
          <input type="range" aria-label="Temperature" min={0} max={2} step={0.05} value={temperature} onInput={(e) => setTemperature(Number(e.currentTarget.value))} />
        </label>
        <label>
          Top P <output>{topP}</output>
          <input type="range" aria-label="Top P" min={0} max={1} step={0.01} value={topP} onInput={(e) => setTopP(Number(e.currentTarget.value))} />
        </label>
        <label>
          Max tokens
          <input type="number" aria-label="Max tokens" min={1} value={maxTokens} onInput={(e) => setMaxTokens(Number(e.currentTarget.value))} />
        </label>
        <label>
          Seed
          <input type="number" aria-label="Seed" value={seed} placeholder="random" onInput={(e) => setSeed(e.currentTarget.value)} />
        </label>
        <button onClick={() => (setMessages([]), setStats(null))} disabled={busy}>
          Clear the conversation
        </button>
      </aside>
      <div class="conversation">
        <div class="messages" aria-live="polite">
          {messages.length === 0 && <p class="muted">Say something to {model || "a model"}.</p>}
          {messages.map((m, i) => (
            <div key={i} class={`message ${m.role}`} data-role={m.role}>
              {m.content || (busy && i === messages.length - 1 ? "…" : "")}
            </div>
          ))}
        </div>
        {error && <p class="error">{error}</p>}
        {stats && <p class="muted">{stats}</p>}
        <form
          class="composer"
          onSubmit={(e) => {
            e.preventDefault();
            void send();
          }}
        >
          <textarea
            aria-label="Message"
            rows={2}
            value={draft}
            placeholder="Enter sends, Shift+Enter starts a new line"
            onInput={(e) => setDraft(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                void send();
              }
            }}
          />
          {busy ? (
            <button type="button" onClick={() => running.current?.abort()}>
              Stop
            </button>
          ) : (
            <button type="submit" class="primary" disabled={!model || !draft.trim()}>
              Send
            </button>
          )}
        </form>
      </div>
    </div>
  );
}
