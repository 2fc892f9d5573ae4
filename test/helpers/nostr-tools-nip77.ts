import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** nostr-tools' NIP-77 module (its package.json does not export the subpath): the third-party judge of Roost's codec. */
export interface NostrToolsNip77 {
  NegentropyStorageVector: new () => {
    insert(timestamp: number, id: string): void;
    seal(): void;
  };
  Negentropy: new (
    storage: unknown,
    frameSizeLimit?: number,
  ) => {
    initiate(): string;
    reconcile(msg: string, onhave?: (id: string) => void, onneed?: (id: string) => void): string | null;
  };
  NegentropySync: new (
    relay: unknown,
    storage: unknown,
    filter: Record<string, unknown>,
    params?: { onhave?: (id: string) => void; onneed?: (id: string) => void; onclose?: (reason?: string) => void },
  ) => { start(): Promise<void>; close(): void };
}

/** Loads nostr-tools/lib/esm/nip77.js by file path. */
export async function loadNostrToolsNip77(): Promise<NostrToolsNip77> {
  const root = dirname(createRequire(import.meta.url).resolve('nostr-tools'));
  return (await import(pathToFileURL(join(root, '..', 'esm', 'nip77.js')).href)) as NostrToolsNip77;
}
