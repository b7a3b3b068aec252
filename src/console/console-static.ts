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

/** The encodings scripts/build-console.mjs writes next to each asset (name.br, name.gz), best first. */
const ENCODINGS = [
  { name: 'br', ext: '.br' },
  { name: 'gzip', ext: '.gz' },
] as const;

/**
 * Which of `offered` the client's Accept-Encoding accepts (q > 0), best first; `identity` when none. A
 * coding listed with q=0 is refused, `*` stands for any coding not listed.
 */
export function pickEncoding(acceptEncoding: string | undefined, offered: ReadonlyArray<string>): string {
  const q = new Map<string, number>();
  for (const part of (acceptEncoding ?? '').split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    const qp = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const v = qp ? Number(qp.slice(2)) : 1;
    q.set(name, Number.isFinite(v) ? v : 0);
  }
  for (const e of offered) {
    const v = q.get(e) ?? q.get('*');
    if (v !== undefined && v > 0) return e;
  }
  return 'identity';
}

/**
 * Serves the console's static files at /console: hashed files under assets/ are cached for a year (their
 * names change with their content), index.html never (it names the current assets); any other path under
 * /console that is not a file is the page itself (the page routes by its URL). Only GET and HEAD.
 * A file the build compressed (file.br, file.gz beside it) is sent compressed when the client accepts it
 * (Content-Encoding, Vary: Accept-Encoding): no compression work per request.
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
    const variants = ENCODINGS.filter((e) => existsSync(target + e.ext));
    const encoding = variants.length
      ? pickEncoding(
          req.headers['accept-encoding'],
          variants.map((e) => e.name),
        )
      : 'identity';
    const sent = encoding === 'identity' ? target : target + ENCODINGS.find((e) => e.name === encoding)!.ext;
    const st = statSync(sent);
    res.setHeader('Content-Type', TYPES[extname(target)] ?? 'application/octet-stream');
    res.setHeader('Content-Length', String(st.size));
    if (variants.length) res.setHeader('Vary', 'Accept-Encoding');
    if (encoding !== 'identity') res.setHeader('Content-Encoding', encoding);
    res.setHeader('Cache-Control', target === index ? 'no-cache' : rel.startsWith('/assets/') ? IMMUTABLE : 'public, max-age=3600');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(sent).pipe(res);
  };
}
