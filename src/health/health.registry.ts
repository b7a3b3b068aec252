import { Injectable } from '@nestjs/common';

export type HealthCheck = () => Promise<void>;

/** Modules register a readiness check for each dependency they use (database, queue, object store). */
@Injectable()
export class HealthRegistry {
  private readonly checks = new Map<string, HealthCheck>();

  register(name: string, check: HealthCheck): void {
    this.checks.set(name, check);
  }

  async run(timeoutMs = 2000): Promise<Record<string, { status: 'up' | 'down'; error?: string }>> {
    const entries = await Promise.all(
      [...this.checks.entries()].map(async ([name, check]) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            check(),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
            }),
          ]);
          return [name, { status: 'up' as const }] as const;
        } catch (e) {
          return [name, { status: 'down' as const, error: (e as Error).message }] as const;
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    return Object.fromEntries(entries);
  }
}
