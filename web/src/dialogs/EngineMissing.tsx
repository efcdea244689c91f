import type { ApiError } from "../api";
import { Confirm } from "../components/Dialog";

/** What a load or a creation answers when its engine is not installed (and the server installs
 * nothing by itself): the error, its hint, and the way to Settings, where it is installed. */
export function EngineMissing({ needs, error, onClose }: { needs: string; error: ApiError; onClose: () => void }) {
  return (
    <Confirm
      title="An engine is missing"
      confirm="Open Settings"
      onCancel={onClose}
      onConfirm={() => {
        onClose();
        location.hash = "#/settings";
      }}
    >
      <p>
        {needs} needs an engine that is not installed: {error.message}.
      </p>
      {error.hint && <p class="muted">{error.hint}</p>}
      <p>Install it from Settings, with its progress shown there.</p>
    </Confirm>
  );
}
