import { createReadStream, existsSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve, sep } from 'node:path';
import type { NextFunction, Request, Response } from 'express';

/** Where `npm run build:console` writes the page: console/dist at the repository root. */
export function consoleDir(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'console', 'dist');
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};
export const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * Serves the console's static files at /console: hashed files under assets/ are cached for a year (their
 * names change with their content), index.html never (it names the current assets); any other path under
 * /console that is not a file is the page itself (the page routes by its URL). Only GET and HEAD.
 */
export function consoleHandler(root = consoleDir()) {
  const base = resolve(root);
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    const index = join(base, 'index.html');
    if (!existsSync(index)) {
      res.status(503).type('text/plain').send('The console is not built: run `npm run build:console` (npm start does it).');
      return;
    }
    let rel: string;
    try {
      rel = decodeURIComponent(req.path);
    } catch {
      rel = '/';
    }
    const file = resolve(base, `.${rel}`);
    let target = index;
    if (file.startsWith(base + sep)) {
      try {
        if (statSync(file).isFile()) target = file;
      } catch {
        // not a file: the page
      }
    }
    if (target === index && rel.startsWith('/assets/')) return next(); // a missing asset is a 404, not the page
    const st = statSync(target);
    res.setHeader('Content-Type', TYPES[extname(target)] ?? 'application/octet-stream');
    res.setHeader('Content-Length', String(st.size));
    res.setHeader('Cache-Control', target === index ? 'no-cache' : rel.startsWith('/assets/') ? IMMUTABLE : 'public, max-age=3600');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(target).pipe(res);
  };
}
