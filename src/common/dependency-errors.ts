/**
 * Whether an error means a dependency (database, Redis, object store) cannot be reached, as opposed to a
 * request it refused or a bug: those answer 503 DEPENDENCY_UNAVAILABLE (with Retry-After), not 500.
 *
 * Drivers report it in their own ways: a socket error code (mysql2, ioredis, minio, node:net: a missing unix
 * socket is ENOENT on connect), a protocol code of mysql2 (connection lost, server shutting down), a message
 * without a code ("Pool is closed.", ioredis "Connection is closed."), wrapped by TypeORM (driverError) or
 * Node (cause, AggregateError of each address tried).
 */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'ENOTCONN',
  'ESHUTDOWN',
  'ERR_SOCKET_CLOSED',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const DRIVER_CODES = new Set([
  // mysql2 / MariaDB
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'PROTOCOL_ENQUEUE_AFTER_QUIT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_QUERY_INTERRUPTED',
  'CR_SERVER_GONE_ERROR',
  'CR_SERVER_LOST',
  'CR_CONNECTION_ERROR',
  'CR_CONN_HOST_ERROR',
  // SQLite: the file is locked by another process or cannot be opened
  'SQLITE_BUSY',
  'SQLITE_CANTOPEN',
  // the service's own mark (e.g. the queue refusing to wait on a Redis that is down)
  'DEPENDENCY_UNAVAILABLE',
]);
const MESSAGES = [
  /^Pool is closed\.?$/i,
  /Can't add new command when connection is in closed state/i,
  /^Connection is closed\.?$/i, // ioredis
  /Connection lost: The server closed the connection/i,
  /^Stream isn't writeable and enableOfflineQueue options is false/i, // ioredis
  /Driver not Connected/i, // TypeORM, after the data source was destroyed
  /Connection with .* database is not established/i, // TypeORM
];

interface ErrorLike {
  code?: unknown;
  syscall?: unknown;
  message?: unknown;
  fatal?: unknown;
  driverError?: unknown;
  cause?: unknown;
  errors?: unknown;
  originalError?: unknown;
}

function matches(e: ErrorLike): boolean {
  const code = typeof e.code === 'string' ? e.code : undefined;
  if (code && (SOCKET_CODES.has(code) || DRIVER_CODES.has(code))) return true;
  // a unix socket that is not there (the server is stopped): ENOENT, but only on connect
  if (code === 'ENOENT' && e.syscall === 'connect') return true;
  const message = typeof e.message === 'string' ? e.message : '';
  return MESSAGES.some((re) => re.test(message));
}

/** True when `error` (or what it wraps) says a dependency could not be reached. */
export function isDependencyUnavailable(error: unknown, depth = 0): boolean {
  if (!error || typeof error !== 'object' || depth > 5) return false;
  const e = error as ErrorLike;
  if (matches(e)) return true;
  const inner = [e.driverError, e.cause, e.originalError, ...(Array.isArray(e.errors) ? e.errors : [])];
  return inner.some((x) => x !== error && isDependencyUnavailable(x, depth + 1));
}

/** Seconds a client should wait before trying again after a 503 DEPENDENCY_UNAVAILABLE. */
export const DEPENDENCY_RETRY_AFTER_SECONDS = 5;
