import { defineConfig } from "vite";

// Relative asset paths: the bundle is served from a webhapp zip, hc-spin or a local server.
export default defineConfig({
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 2000 },
});
