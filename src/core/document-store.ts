import type { DocumentNode } from 'graphql';
import { Lru } from './lru.js';

/**
 * Apollo's store of parsed and validated documents, for documents that come back: a document is kept
 * on its second sight (the first only notes its key), at most `maxDocuments` of them, least recently used
 * out. Apollo's default keeps everything up to 30 MiB of JSON, which it computes by serialising each
 * document it stores: a client that writes ids into its documents made every request pay for that and
 * filled the heap with documents never asked for again.
 */
export class HotDocumentStore {
  private readonly documents: Lru<string, DocumentNode>;
  private readonly seen: Lru<string, true>;

  constructor(options: { maxDocuments?: number; maxSeen?: number } = {}) {
    this.documents = new Lru(options.maxDocuments ?? 500);
    this.seen = new Lru(options.maxSeen ?? 10_000);
  }

  async get(key: string): Promise<DocumentNode | undefined> {
    return this.documents.get(key);
  }

  async set(key: string, value: DocumentNode): Promise<void> {
    if (this.documents.has(key) || this.seen.has(key)) {
      this.seen.delete(key);
      this.documents.set(key, value);
    } else {
      this.seen.set(key, true);
    }
  }

  async delete(key: string): Promise<boolean> {
    this.seen.delete(key);
    return this.documents.delete(key);
  }

  /** Documents held (tests, metrics). */
  get size(): number {
    return this.documents.size;
  }
}
