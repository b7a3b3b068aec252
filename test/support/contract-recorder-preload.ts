/**
 * `node --require dist/test/support/contract-recorder-preload.js dist/src/main.js`: records every response of
 * the service child process (test/support/service-process.ts adds it when the run records).
 */
import http from 'node:http';
import { recordFile, recordResponse } from './contract-recorder';

const file = recordFile();
if (file) {
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (this: http.Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'request') recordResponse(args[0] as http.IncomingMessage, args[1] as http.ServerResponse, file);
    return (emit as (this: http.Server, event: string | symbol, ...a: unknown[]) => boolean).call(this, event, ...args);
  } as typeof emit;
}
