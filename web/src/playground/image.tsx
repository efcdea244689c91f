/** An image the playground sends (captions, upscaling, faces). */
import { useState } from "preact/hooks";

/** An image picked from the disk, as a data URL (what the image routes take). */
export function useImage() {
  const [image, setImage] = useState<{ url: string; name: string; width: number; height: number } | null>(null);
  const pick = (file: File) => {
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      const probe = new Image();
      probe.onload = () => setImage({ url, name: file.name, width: probe.naturalWidth, height: probe.naturalHeight });
      probe.src = url;
    };
    reader.readAsDataURL(file);
  };
  const input = (
    <label>
      Image
      <input
        type="file"
        aria-label="Image file"
        accept="image/*"
        onChange={(e) => {
          const f = e.currentTarget.files?.[0];
          if (f) pick(f);
        }}
      />
    </label>
  );
  return { image, input };
}
