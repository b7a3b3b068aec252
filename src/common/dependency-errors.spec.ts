import { QueryFailedError } from 'typeorm';
import { isDependencyUnavailable } from './dependency-errors';

const sys = (code: string, syscall = 'connect', message = `${syscall} ${code}`) => Object.assign(new Error(message), { code, syscall });

describe('isDependencyUnavailable', () => {
  it.each([
    ['a unix socket that is not there', sys('ENOENT')],
    ['refused', sys('ECONNREFUSED')],
    ['reset', sys('ECONNRESET', 'read')],
    ['timed out', sys('ETIMEDOUT')],
    ['a broken pipe', sys('EPIPE', 'write')],
    ['an unknown host', sys('ENOTFOUND', 'getaddrinfo')],
    [
      'mysql2: connection lost',
      Object.assign(new Error('Connection lost: The server closed the connection.'), { code: 'PROTOCOL_CONNECTION_LOST', fatal: true }),
    ],
    ['mysql2: the pool closed', new Error('Pool is closed.')],
    ['mysql2: a closed connection', new Error("Can't add new command when connection is in closed state")],
    ['ioredis: a closed connection', new Error('Connection is closed.')],
    ['MariaDB shutting down', Object.assign(new Error('Server shutdown in progress'), { code: 'ER_SERVER_SHUTDOWN' })],
    ['wrapped by TypeORM', new QueryFailedError('SELECT 1', [], sys('ECONNREFUSED'))],
    ['a cause', new Error('request failed', { cause: sys('ECONNRESET', 'read') })],
    ['every address refused (AggregateError)', Object.assign(new AggregateError([sys('ECONNREFUSED'), sys('ECONNREFUSED')], 'connect failed'), {})],
  ])('%s: yes', (_what, e) => {
    expect(isDependencyUnavailable(e)).toBe(true);
  });

  it.each([
    ['a missing file (not a connection)', sys('ENOENT', 'open')],
    ['a duplicate key', Object.assign(new Error('Duplicate entry'), { code: 'ER_DUP_ENTRY' })],
    ['a bug', new TypeError('x is undefined')],
    ['nothing', undefined],
  ])('%s: no', (_what, e) => {
    expect(isDependencyUnavailable(e)).toBe(false);
  });
});
