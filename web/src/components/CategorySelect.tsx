import { CATEGORIES, CATEGORY_LABELS } from "../api";

interface Props {
  value: string;
  onChange: (category: string) => void;
  empty: string; // the label of "no category chosen"
  disabled?: boolean;
}

export function CategorySelect({ value, onChange, empty, disabled }: Props) {
  return (
    <select aria-label="Category" value={value} disabled={disabled} onChange={(e) => onChange(e.currentTarget.value)}>
      <option value="">{empty}</option>
      {CATEGORIES.map((c) => (
        <option key={c} value={c}>
          {CATEGORY_LABELS[c]}
        </option>
      ))}
    </select>
  );
}
