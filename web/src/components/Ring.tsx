interface Props {
  label: string;
  percent: number;
  detail: string;
}

/** A usage ring: red above 90%. */
export function Ring({ label, percent, detail }: Props) {
  const r = 15.9155; // circumference 100
  const hot = percent > 90;
  return (
    <div class={`ring${hot ? " hot" : ""}`} data-testid={`ring-${label.toLowerCase()}`} title={detail}>
      <svg viewBox="0 0 36 36" width="40" height="40" aria-hidden="true">
        <circle class="track" cx="18" cy="18" r={r} />
        <circle
          class="value"
          cx="18"
          cy="18"
          r={r}
          stroke-dasharray={`${Math.max(0, Math.min(100, percent)).toFixed(1)} 100`}
          transform="rotate(-90 18 18)"
        />
      </svg>
      <div>
        <strong>
          {label} {percent.toFixed(0)}%
        </strong>
        <small>{detail}</small>
      </div>
    </div>
  );
}
