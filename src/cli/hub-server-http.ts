/**
 * HTTP plumbing shared by the local Hub server's parts (src/cli/hub-server.ts): errors that carry a
 * status and a Hub error code, JSON answers, request bodies with a size cap, CORS headers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An answer other than success: status, message, the Hub's `X-Error-Code`, extra headers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Headers a page may read from our answers (the Hub exposes these too). */
export const EXPOSED_HEADERS = [
  'Content-Range',
  'Content-Length',
  'ETag',
  'X-Linked-Etag',
  'X-Linked-Size',
  'X-Repo-Commit',
  'Accept-Ranges',
  'X-Error-Code',
  'X-Error-Message',
  'X-Request-Id',
  'Link',
  'Retry-After',
  'RateLimit',
  'RateLimit-Policy',
].join(', ');

export const ALLOWED_HEADERS =
  'Range, Authorization, Content-Type, Accept, If-None-Match, If-Range, Cache-Control, X-Request-Id';
export const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, OPTIONS';

export function setCorsHeaders(res: ServerResponse): void {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
}

export function answerPreflight(res: ServerResponse): void {
  res.writeHead(204, {
    'Access-Control-Allow-Methods': ALLOWED_METHODS,
    'Access-Control-Allow-Headers': ALLOWED_HEADERS,
    'Access-Control-Max-Age': '86400',
  });
  res.end();
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The bearer token of a request, or undefined. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header(req, 'authorization') ?? '');
  return m ? m[1] : undefined;
}

/** Counts body bytes written per response (the server's stats). */
export const bodyCounter = new WeakMap<ServerResponse, { bodyBytes: number }>();

export function sendJson(res: ServerResponse, status: number, body: unknown, method = 'GET', headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  const counter = bodyCounter.get(res);
  if (counter && method !== 'HEAD') counter.bodyBytes += Buffer.byteLength(text);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
  });
  res.end(method === 'HEAD' ? undefined : text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType: string, headers: Record<string, string> = {}): void {
  const counter = bodyCounter.get(res);
  if (counter) counter.bodyBytes += Buffer.byteLength(text);
  res.writeHead(status, { ...headers, 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(text)) });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const status = err instanceof HttpError ? err.status : 500;
  const message = err instanceof Error ? err.message : String(err);
  const headers: Record<string, string> = err instanceof HttpError ? { ...err.headers } : {};
  if (err instanceof HttpError && err.code) headers['X-Error-Code'] = err.code;
  headers['X-Error-Message'] = message.replace(/[^\x20-\x7e]/g, '?');
  sendJson(res, status, { error: message }, 'GET', headers);
}

/** The request body as bytes; over `maxBytes` is a 413 (bodies here are JSON and NDJSON, not weights). */
export async function readBodyBytes(req: IncomingMessage, maxBytes = 64 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) throw new HttpError(413, `request body over ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export async function readBody(req: IncomingMessage, maxBytes?: number): Promise<string> {
  return (await readBodyBytes(req, maxBytes)).toString('utf8');
}

export async function readJsonBody(req: IncomingMessage, what: string): Promise<unknown> {
  const text = await readBody(req);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, `${what}: the body is not JSON`);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
