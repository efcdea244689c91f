import type { ComponentChildren } from "preact";
import { useEffect } from "preact/hooks";

interface Props {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  footer?: ComponentChildren;
  wide?: boolean;
  drawer?: boolean; // a panel along the right edge, full height
  extra?: ComponentChildren; // buttons next to the close button (minimise)
}

/** A modal dialog; Escape or the × closes it. */
export function Dialog({ title, onClose, children, footer, wide, drawer, extra }: Props) {
  useEffect(() => {
    const key = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", key);
    return () => window.removeEventListener("keydown", key);
  }, [onClose]);
  return (
    <div class={`backdrop${drawer ? " side" : ""}`} onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div class={`dialog${wide ? " wide" : ""}${drawer ? " drawer" : ""}`} role="dialog" aria-modal="true" aria-label={title}>
        <header>
          <h2>{title}</h2>
          {extra}
          <button class="icon" aria-label="Close" title="Close" onClick={onClose}>
            ×
          </button>
        </header>
        <div class="body">{children}</div>
        {footer && <footer>{footer}</footer>}
      </div>
    </div>
  );
}

interface ConfirmProps {
  title: string;
  children: ComponentChildren;
  confirm: string;
  danger?: boolean;
  busy?: boolean;
  error?: string | null;
  onConfirm: () => void;
  onCancel: () => void;
}

export function Confirm({ title, children, confirm, danger, busy, error, onConfirm, onCancel }: ConfirmProps) {
  return (
    <Dialog
      title={title}
      onClose={onCancel}
      footer={
        <>
          <button onClick={onCancel}>Cancel</button>
          <button class={danger ? "danger" : "primary"} disabled={busy} onClick={onConfirm}>
            {confirm}
          </button>
        </>
      }
    >
      {children}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </Dialog>
  );
}
