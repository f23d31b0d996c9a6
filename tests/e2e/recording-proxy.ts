// A Hub in front of the local test Hub that records what it receives: every request's method,
// path and headers (the Authorization header's value kept only as "token …" or "none"), then
// passes it on unchanged and sends the answer back. Two of them, on ports of their own, are two
// Hub origins for the token tests: one the token was entered for, one a link points to.
import { createServer, request, type Server } from 'node:http';

export interface Received {
  method: string;
  path: string;
  /** The Authorization header, as "none" or "Bearer <token>". */
  authorization: string;
  /** The names of the headers it came with. */
  headers: string[];
}

export interface RecordingHub {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

export async function recordingHub(target: string): Promise<RecordingHub> {
  const to = new URL(target);
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    received.push({
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      authorization: req.headers.authorization ?? 'none',
      headers: Object.keys(req.headers).sort(),
    });
    const headers = { ...req.headers, host: to.host };
    const out = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    received,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
