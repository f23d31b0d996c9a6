// The page's saved access tokens, one per Hub origin (src/hub/token-policy.ts says where each may
// go). They sit in IndexedDB encrypted with AES-GCM under a key the browser generated as
// non-extractable: a script that reads the database gets ciphertext, and no script can export
// the key (it can still ask the browser to decrypt while it runs in the page: the
// Content-Security-Policy keeps foreign scripts out). The page once kept a single plain-text
// token in localStorage['hf-token'], always huggingface.co's: it is moved here and removed.
import { createStore, del, get, set, update, type UseStore } from 'idb-keyval';
import { DEFAULT_HUB_ORIGIN } from '../hub/token-policy';

/** Where the old page kept its one token (huggingface.co's). */
export const LEGACY_TOKEN_KEY = 'hf-token';

interface Sealed {
  iv: Uint8Array;
  data: ArrayBuffer;
}

export class TokenStore {
  private db: UseStore | null = null;
  private key: Promise<CryptoKey> | null = null;

  constructor(private readonly dbName = 'qlora-tokens') {}

  /** The token saved for a Hub origin, or null. */
  async load(origin: string): Promise<string | null> {
    const sealed = await get<Sealed>(`token:${origin}`, this.store());
    if (!sealed) return null;
    try {
      const key = await this.cryptoKey();
      const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: sealed.iv as BufferSource }, key, sealed.data);
      return new TextDecoder().decode(plain);
    } catch {
      // the key was lost (site data partly cleared): the token cannot be read back; forget it
      await del(`token:${origin}`, this.store());
      return null;
    }
  }

  /** Saves (or, with null or '', forgets) the token of one Hub origin; other origins' stay as they are. */
  async save(origin: string, token: string | null): Promise<void> {
    if (!token) return del(`token:${origin}`, this.store());
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const key = await this.cryptoKey();
    const data = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, new TextEncoder().encode(token));
    await set(`token:${origin}`, { iv, data } satisfies Sealed, this.store());
  }

  /** Moves the old page's plain-text token (huggingface.co's) in here, unless one is saved already. */
  async migrate(storage: Pick<Storage, 'getItem' | 'removeItem'>): Promise<void> {
    const old = storage.getItem(LEGACY_TOKEN_KEY)?.trim();
    if (old && !(await this.load(DEFAULT_HUB_ORIGIN))) await this.save(DEFAULT_HUB_ORIGIN, old);
    storage.removeItem(LEGACY_TOKEN_KEY);
  }

  private store(): UseStore {
    return (this.db ??= createStore(this.dbName, 'tokens'));
  }

  /** The AES-GCM key, made once per browser profile and kept (as a key object, not bytes) in IndexedDB. */
  private cryptoKey(): Promise<CryptoKey> {
    return (this.key ??= (async () => {
      const kept = await get<CryptoKey>('key', this.store());
      if (kept) return kept;
      const made = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
      // in one transaction: where another tab made a key first, its key wins and ours is dropped
      let chosen: CryptoKey = made;
      await update<CryptoKey>('key', (old) => (chosen = old ?? made), this.store());
      return chosen;
    })().catch((e) => {
      this.key = null;
      throw e;
    }));
  }
}
