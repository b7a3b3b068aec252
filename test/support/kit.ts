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
