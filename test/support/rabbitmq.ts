import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect } from 'amqplib';
import { freePort } from './service-process';

const run = promisify(execFile);
const BIN = '/usr/lib/rabbitmq/bin';

export interface PrivateBroker {
  url: string;
  /** stops the node (rabbitmqctl stop): clients lose their connections */
  stop(): Promise<void>;
  /** starts it again on the same port and data (durable queues and persistent messages survive) */
  start(): Promise<void>;
  /** stops it and removes its files */
  close(): Promise<void>;
}

/**
 * A RabbitMQ node of its own for a test that stops the broker (the shared one on 5672 is never touched): its
 * own node name, AMQP and distribution ports, data, logs, config, plugin list and Erlang cookie (HOME) in a
 * temp dir. Runs the server script directly (as the current user) instead of the wrapper that switches users.
 */
export async function startPrivateBroker(): Promise<PrivateBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'hcm-rabbit-'));
  const port = await freePort();
  const distPort = await freePort();
  const node = `hcmtest${port}@localhost`;
  writeFileSync(join(dir, 'rabbitmq.conf'), `listeners.tcp.local = 127.0.0.1:${port}\nloopback_users = none\n`);
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  writeFileSync(join(dir, 'rabbitmq-env.conf'), '');
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: dir,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_PID_FILE: join(dir, 'rabbit.pid'),
  };
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  let running = false;
  const start = async () => {
    await run(join(BIN, 'rabbitmq-server'), ['-detached'], { env, cwd: dir });
    running = true;
    for (const deadline = Date.now() + 90_000; ;) {
      const ok = await connect(url).then(
        async (c) => {
          await c.close();
          return true;
        },
        () => false,
      );
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`the private RabbitMQ on ${port} did not start`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const stop = async () => {
    if (!running) return;
    await run(join(BIN, 'rabbitmqctl'), ['-n', node, 'stop'], { env, cwd: dir, timeout: 60_000 });
    running = false;
  };
  await start();
  return {
    url,
    start,
    stop,
    close: async () => {
      await stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
