import { defineConfig } from "vite";

// The bundle goes into the Python package, where `modelyard serve` finds it (src/modelyard/ui).
// `npm run dev` serves the source with hot reload and sends the API to a server on port 11480.
export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { outDir: "../src/modelyard/ui", emptyOutDir: true, target: "es2022" },
  server: {
    proxy: { "/api": "http://127.0.0.1:11480", "/v1": "http://127.0.0.1:11480" },
  },
});
