import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/**
 * How a refused upload reaches a client that is still sending its body.
 *
 * With `Expect: 100-continue` the refusal goes out before the body is sent: the HTTP server does not answer
 * "100 Continue" by itself on the upload route; the upload writes it only once every check (auth, state,
 * content type, size, quota) has passed. Any other route gets "100 Continue" at once, as Node would send it.
 *
 * Without it, a client may write the whole body before it reads: answering and closing at once would reset the
 * connection under it (EPIPE / ECONNRESET, the answer lost). So a refused upload first reads and discards the
 * rest of the body, up to MAX_DRAIN_BYTES (and while data keeps coming), then answers with `Connection: close`.
 */
export const MAX_DRAIN_BYTES = 64 * 1024 * 1024;

/** Routes whose handler decides itself when to answer "100 Continue". */
const DEFERS_CONTINUE = [{ method: 'PUT', path: /^\/images\/[^/?#]+\/file(?:[?#]|$)/ }];

export const expectsContinue = (req: IncomingMessage): boolean => /(^|,)\s*100-continue\s*($|,)/i.test(String(req.headers.expect ?? ''));

/** Handles `Expect: 100-continue` on `server`: deferred on the upload route, answered at once elsewhere. */
export function handleExpectContinue(server: Server): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (!DEFERS_CONTINUE.some((r) => r.method === req.method && r.path.test(req.url ?? ''))) res.writeContinue();
    server.emit('request', req, res);
  });
}

/** Per request: whether "100 Continue" was written (so the client is sending its body). */
const continued = new WeakSet<IncomingMessage>();

/** The upload passed its checks: a client waiting on `Expect: 100-continue` may send the body now. */
export function allowBody(req: IncomingMessage, res: ServerResponse): void {
  if (expectsContinue(req) && !continued.has(req) && !res.headersSent) {
    continued.add(req);
    res.writeContinue();
  }
}

/** Whether a client may still be sending a body the service will not read (so it must be drained first). */
export const bodyInFlight = (req: IncomingMessage): boolean => !req.complete && !req.destroyed && (!expectsContinue(req) || continued.has(req));

/**
 * Reads and discards the rest of a request body: until it ends, MAX_DRAIN_BYTES were read, no data came for
 * `idleMs`, or the client went away. Never holds the bytes.
 */
export function drainBody(req: IncomingMessage, idleMs: number, maxBytes = MAX_DRAIN_BYTES): Promise<void> {
  if (req.complete || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let read = 0;
    const done = () => {
      req.off('data', onData);
      req.off('end', done);
      req.off('close', done);
      req.off('error', done);
      req.setTimeout(0);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      read += chunk.length;
      if (read > maxBytes) done();
    };
    req.on('data', onData);
    req.once('end', done);
    req.once('close', done);
    req.once('error', done);
    req.setTimeout(idleMs, done);
    req.resume();
  });
}
