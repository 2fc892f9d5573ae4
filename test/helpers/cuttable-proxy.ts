import { connect, createServer, type Socket } from 'node:net';

/** A TCP proxy on 127.0.0.1 in front of one port, whose link can be cut (an agent going offline) and restored. */
export interface CuttableProxy {
  url: string;
  /** Destroys every forwarded connection and refuses new ones until `restore`. */
  cut(): void;
  restore(): void;
  readonly isCut: boolean;
  /**
   * Freezes (true) or thaws (false) the link: sockets stay open but bytes in either direction are
   * dropped, as over a dead NAT mapping or a suspended laptop. Nothing is closed, so only pings notice.
   */
  freeze(on: boolean): void;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/** Starts a proxy to `targetPort`; the port stays the same across cuts. */
export async function startCuttableProxy(targetPort: number): Promise<CuttableProxy> {
  let isCut = false;
  let frozen = false;
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    if (isCut) return void client.destroy();
    connections++;
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (d) => !frozen && upstream.write(d));
    upstream.on('data', (d) => !frozen && client.write(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}`,
    cut() {
      isCut = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      isCut = false;
    },
    get isCut() {
      return isCut;
    },
    freeze(on) {
      frozen = on;
    },
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
