/**
 * Helpers every kind of test shares (one copy, not one per file). Each waits on a condition and fails naming
 * what never happened; none asserts a timing.
 */

/** Polls `cond` until it holds; after `ms` fails with "never: <what>". */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000, everyMs = 20): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Reads a value (an image record over HTTP, say) until `ok` holds and answers it; after `ms` fails with
 * "never: <what>" and the last value read, so a test that waits on a state says where it stopped.
 */
export async function readUntil<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 20_000, everyMs = 40): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const last = await read();
    if (ok(last)) return last;
    if (Date.now() > end) throw new Error(`never: ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
