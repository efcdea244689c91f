/** The load dialog: the memory estimate, and whether it fits what is free now. */
import { type Estimate, type Model } from "../api";
import { Confirm } from "../components/Dialog";
import { size } from "../format";

export function LoadConfirm(props: {
  model: Model;
  adapter: string | null;
  estimate: Estimate | null;
  note: string | null;
  onCancel: () => void;
  onLoad: (force: boolean) => void;
}) {
  const e = props.estimate;
  const fits = !e || e.fits;
  return (
    <Confirm
      title={`Load ${props.model.name}`}
      confirm={fits ? "Load" : "Load anyway"}
      danger={!fits}
      onCancel={props.onCancel}
      onConfirm={() => props.onLoad(!fits)}
    >
      {props.adapter && <p>With the adapter {props.adapter}.</p>}
      {e && (
        <div class="estimate" aria-label="Memory estimate">
          <p>
            Needs <strong>{size(e.ram.total)}</strong> of memory, <strong>{size(e.free_ram)}</strong> free
            {e.vram.length > 0 && ` · GPU ${e.vram.map((v) => size(v.total)).join(" + ")} of ${e.free_vram.map(size).join(" + ")} free`}.
          </p>
          <meter min={0} max={Math.max(e.free_ram, e.ram.total)} value={e.ram.total} high={e.free_ram * 0.9} />
          <p class="muted">
            weights {size(e.ram.weights)} · KV cache {size(e.ram.kv_cache)} ({e.n_ctx.toLocaleString()} tokens) · compute{" "}
            {size(e.ram.compute)}
            {e.ram.prompt_cache > 0 && ` · prompt cache ${size(e.ram.prompt_cache)} at most, as prompts are cached`} ·{" "}
            {e.runtime}
          </p>
          {!fits && (
            <p class="error">
              It will not fit what is free now.
              {e.max_ctx ? ` A context of ${e.max_ctx.toLocaleString()} tokens would.` : ""}
            </p>
          )}
        </div>
      )}
      {props.note && <p class="muted">{props.note}</p>}
    </Confirm>
  );
}
