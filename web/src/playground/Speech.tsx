/** The playground's speech modes: speech to text (a recording or a file) and text to speech. */
import { useEffect, useState } from "preact/hooks";
import { authorised, failure, get, postForm, type Voices } from "../api";
import { useCall } from "./common";

interface Segment {
  id: number;
  start: number;
  end: number;
  text: string;
}

interface Heard {
  text: string;
  language: string;
  duration: number;
  segments?: Segment[];
}

/** A recording (any type the browser records: webm, ogg) as a 16-bit mono WAV, which every
 * speech model's engine reads. */
async function wavOf(blob: Blob): Promise<Blob> {
  const context = new AudioContext();
  try {
    const audio = await context.decodeAudioData(await blob.arrayBuffer());
    const mono = new Float32Array(audio.length);
    for (let c = 0; c < audio.numberOfChannels; c++) {
      const channel = audio.getChannelData(c);
      for (let i = 0; i < audio.length; i++) mono[i] += channel[i] / audio.numberOfChannels;
    }
    const data = new DataView(new ArrayBuffer(44 + mono.length * 2));
    const text = (at: number, s: string) => [...s].forEach((ch, i) => data.setUint8(at + i, ch.charCodeAt(0)));
    text(0, "RIFF");
    data.setUint32(4, 36 + mono.length * 2, true);
    text(8, "WAVEfmt ");
    data.setUint32(16, 16, true);
    data.setUint16(20, 1, true); // PCM
    data.setUint16(22, 1, true); // one channel
    data.setUint32(24, audio.sampleRate, true);
    data.setUint32(28, audio.sampleRate * 2, true);
    data.setUint16(32, 2, true);
    data.setUint16(34, 16, true);
    text(36, "data");
    data.setUint32(40, mono.length * 2, true);
    mono.forEach((v, i) => data.setInt16(44 + i * 2, Math.max(-1, Math.min(1, v)) * 0x7fff, true));
    return new Blob([data.buffer], { type: "audio/wav" });
  } finally {
    void context.close();
  }
}

const seconds = (s: number) => `${Math.floor(s / 60)}:${(s % 60).toFixed(2).padStart(5, "0")}`;

export function Speech({ model }: { model: string }) {
  const [audio, setAudio] = useState<{ blob: Blob; name: string; url: string } | null>(null);
  const [translate, setTranslate] = useState(false);
  const [language, setLanguage] = useState("");
  const [recorder, setRecorder] = useState<MediaRecorder | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const { result, error, busy, call } = useCall<Heard>();
  const choose = (blob: Blob, name: string) => {
    if (audio) URL.revokeObjectURL(audio.url);
    setAudio({ blob, name, url: URL.createObjectURL(blob) });
  };
  const record = async () => {
    setProblem(null);
    if (recorder) {
      recorder.stop();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const taken = new MediaRecorder(stream);
      const parts: Blob[] = [];
      taken.ondataavailable = (e) => parts.push(e.data);
      taken.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        setRecorder(null);
        wavOf(new Blob(parts, { type: taken.mimeType }))
          .then((wav) => choose(wav, "recording.wav"))
          .catch((e: unknown) => setProblem(`the recording could not be read: ${String(e)}`));
      };
      taken.start();
      setRecorder(taken);
    } catch (e) {
      setProblem(`no microphone: ${String(e)}`);
    }
  };
  const run = () =>
    call(async () => {
      const form = new FormData();
      form.append("model", model);
      form.append("file", audio!.blob, audio!.name);
      form.append("response_format", "verbose_json");
      form.append("timestamp_granularities[]", "segment");
      if (language && !translate) form.append("language", language);
      return postForm<Heard>(`/v1/audio/${translate ? "translations" : "transcriptions"}`, form);
    });
  return (
    <div class="tool speech">
      <div class="row">
        <label>
          Audio file
          <input
            type="file"
            aria-label="Audio file"
            accept="audio/*"
            onChange={(e) => {
              const f = e.currentTarget.files?.[0];
              if (f) choose(f, f.name);
            }}
          />
        </label>
        <button onClick={() => void record()}>{recorder ? "Stop recording" : "Record"}</button>
      </div>
      {audio && <audio controls src={audio.url} aria-label="Input audio" />}
      <div class="row">
        <label>
          Language
          <input
            type="text"
            aria-label="Language"
            placeholder="detect (e.g. en)"
            value={language}
            disabled={translate}
            onInput={(e) => setLanguage(e.currentTarget.value.trim())}
          />
        </label>
        <label class="inline">
          <input type="checkbox" aria-label="Translate to English" checked={translate} onChange={(e) => setTranslate(e.currentTarget.checked)} />
          Translate to English
        </label>
      </div>
      <button class="primary" disabled={!model || busy || !audio} onClick={() => void run()}>
        {busy ? "Listening…" : translate ? "Translate" : "Transcribe"}
      </button>
      {(problem || error) && <p class="error">{problem ?? error}</p>}
      {result && (
        <div class="heard">
          <p data-testid="transcript">{result.text}</p>
          <p class="muted">
            {result.language || "language unknown"}, {result.duration.toFixed(1)} s
          </p>
          <table aria-label="Segments">
            <tbody>
              {(result.segments ?? []).map((s) => (
                <tr key={s.id}>
                  <td class="time">
                    {seconds(s.start)} – {seconds(s.end)}
                  </td>
                  <td>{s.text}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

export function Voice({ model }: { model: string }) {
  const [text, setText] = useState("The lighthouse keeper lit the lamp for the ships at sea.");
  const [voice, setVoice] = useState("");
  const [voices, setVoices] = useState<string[]>([]);
  useEffect(() => {
    setVoices([]);
    if (!model) return;
    get<Voices>(`/v1/audio/voices?model=${encodeURIComponent(model)}`)
      .then((r) => {
        setVoices(r.voices);
        setVoice((v) => (r.voices.includes(v) ? v : (r.voices[0] ?? "")));
      })
      .catch(() => setVoices([])); // not loaded yet: any name, the engine says which it has
  }, [model]);
  const [speed, setSpeed] = useState(1);
  const { result, error, busy, call } = useCall<{ url: string; bytes: number }>();
  const run = () =>
    call(async () => {
      const res = await fetch("/v1/audio/speech", {
        method: "POST",
        headers: authorised({ "Content-Type": "application/json" }),
        body: JSON.stringify({ model, input: text, voice: voice || "default", speed, response_format: "wav" }),
      });
      if (!res.ok) throw await failure(res);
      const blob = await res.blob();
      if (result) URL.revokeObjectURL(result.url);
      return { url: URL.createObjectURL(blob), bytes: blob.size };
    });
  return (
    <div class="tool voice">
      <label>
        Text
        <textarea aria-label="Text" rows={3} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      </label>
      <div class="row">
        <label>
          Voice
          {voices.length ? (
            <select aria-label="Voice" value={voice} onChange={(e) => setVoice(e.currentTarget.value)}>
              {voices.map((v) => (
                <option key={v} value={v}>
                  {v}
                </option>
              ))}
            </select>
          ) : (
            <input type="text" aria-label="Voice" value={voice} placeholder="default" onInput={(e) => setVoice(e.currentTarget.value.trim())} />
          )}
        </label>
        <label>
          Speed
          <input type="number" aria-label="Speed" min={0.25} max={4} step={0.25} value={speed} onInput={(e) => setSpeed(Number(e.currentTarget.value))} />
        </label>
      </div>
      <button class="primary" disabled={!model || busy || !text.trim()} onClick={() => void run()}>
        {busy ? "Speaking…" : "Speak"}
      </button>
      {error && <p class="error">{error}</p>}
      {result && <audio controls autoplay src={result.url} aria-label="Speech" data-bytes={result.bytes} />}
    </div>
  );
}
