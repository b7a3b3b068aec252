/**
 * Preloaded into a benchmarked service process (NODE_OPTIONS=--require dist/bench/query-counter.js) with
 * BENCH_COUNT_FILE set: counts every command mysql2 sends to the server (each one a round trip: queries,
 * prepared executes, prepares, pings) and the SQL statements among them, and writes those counts with
 * process.cpuUsage() to the file every 100 ms, so a benchmark can take differences around a run. In the main
 * thread only: a preload runs in every worker thread too, and the hashing thread (started at start-up) wrote its
 * own empty counts to the same file, so that a benchmark read zeros now and then (bench:catalog printed 5-20
 * statements per list where there was one).
 */
import { renameSync, writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

const file = process.env.BENCH_COUNT_FILE;
if (file && isMainThread) {
  const counts = { roundTrips: 0, statements: 0, byCommand: {} as Record<string, number>, bySql: {} as Record<string, number>, cpuMicros: 0 };
  const Base = (require('mysql2') as { Connection: { prototype: { addCommand: (cmd: { constructor: { name: string }; sql?: string }) => unknown } } })
    .Connection;
  const add = Base.prototype.addCommand;
  Base.prototype.addCommand = function (this: unknown, cmd: { constructor: { name: string }; sql?: string }) {
    const name = cmd?.constructor?.name ?? '?';
    if (name !== 'ClientHandshake' && name !== 'ServerHandshake') {
      counts.roundTrips++;
      // a multi-statement query (StatementPipeline joins its statements with ';\n') is one round trip of several
      const parts = typeof cmd.sql === 'string' ? cmd.sql.split(';\n') : [name];
      if (name === 'Query' || name === 'Execute') counts.statements += parts.length;
      counts.byCommand[name] = (counts.byCommand[name] ?? 0) + 1;
      for (const part of parts) {
        // the statement's shape (first 70 characters), to tell where the round trips go
        // (mysql2 formats values into the SQL of a query: quoted strings and numbers are shown as ?, so that
        // one statement is one shape whatever its values, and the file stays small)
        const shape =
          typeof cmd.sql === 'string'
            ? part
                .slice(0, 400)
                .replace(/'(?:[^'\\]|\\.)*'/g, '?')
                .replace(/\b\d+\b/g, '?')
                .replace(/\s+/g, ' ')
                .slice(0, 70)
            : name;
        counts.bySql[shape] = (counts.bySql[shape] ?? 0) + 1;
      }
    }
    return add.call(this, cmd);
  };
  // (every write is CPU time of the measured process too: skipped while nothing was sent, except once a second)
  let flushed = { roundTrips: -1, at: 0 };
  const flush = () => {
    if (counts.roundTrips === flushed.roundTrips && Date.now() - flushed.at < 1000) return;
    flushed = { roundTrips: counts.roundTrips, at: Date.now() };
    const u = process.cpuUsage();
    counts.cpuMicros = u.user + u.system;
    try {
      // written aside and renamed: a reader never sees half a file
      writeFileSync(`${file}.tmp`, JSON.stringify(counts));
      renameSync(`${file}.tmp`, file);
    } catch {
      /* the bench reads what it can */
    }
  };
  setInterval(flush, 100).unref();
}
