import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { trimAntdCssPlugin } from './trim-antd-css.mjs';

const root = dirname(fileURLToPath(import.meta.url));

// The page is served by the service at /console (src/console/console-static.ts): hashed assets under
// /console/assets are cached for a year, index.html is not cached.
export default defineConfig({
  root,
  base: '/console/',
  publicDir: false,
  plugins: [trimAntdCssPlugin()],
  // React and antd drop their development checks and warnings
  define: { 'process.env.NODE_ENV': JSON.stringify('production') },
  build: {
    outDir: `${root}/dist`,
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 2000,
    sourcemap: false,
    rollupOptions: {
      // antd's modules start with "use client" (for React server components): meaningless in this bundle
      onwarn(w, warn) {
        if (w.code !== 'MODULE_LEVEL_DIRECTIVE') warn(w);
      },
    },
  },
});
