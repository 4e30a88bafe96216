import { openAsBlob } from "node:fs";
import { open } from "node:fs/promises";
import { basename } from "node:path";
import type { QdrantClient } from "@qdrant/js-client-rest";
import { digest } from "./digest";

export interface SavedSnapshot {
  sha256: string;
  bytes: number;
  points: number;
}

/**
 * Collection snapshots through Qdrant's snapshot API (self-hosted and Qdrant Cloud alike): create on the server,
 * download, delete the server's copy (snapshots fill the server's disk otherwise); restore by upload, which
 * replaces the collection. The client library covers everything but the file transfers, done with fetch.
 */
export class QdrantSnapshots {
  private readonly client: QdrantClient;
  private readonly baseUrl: string;
  private readonly headers: Record<string, string>;

  constructor({ url, apiKey }: { url: string; apiKey?: string }) {
    const { QdrantClient } = require("@qdrant/js-client-rest") as typeof import("@qdrant/js-client-rest");
    this.client = new QdrantClient({ url, apiKey, timeout: 600_000, checkCompatibility: false });
    this.baseUrl = url.replace(/\/+$/, "");
    this.headers = apiKey ? { "api-key": apiKey } : {};
  }

  async collections(prefix: string): Promise<string[]> {
    const { collections } = await explained("listing collections", this.client.getCollections());
    return collections
      .map((c) => c.name)
      .filter((name) => name.startsWith(prefix))
      .sort();
  }

  /** Exact point count, or undefined when the collection does not exist. */
  async points(collection: string): Promise<number | undefined> {
    const exists = await explained(collection, this.client.collectionExists(collection));
    if (!exists.exists) return undefined;
    return (await explained(collection, this.client.count(collection, { exact: true }))).count;
  }

  /** `points` is counted as the snapshot is taken; writes in between may make the file differ by a few. */
  async save(collection: string, file: string): Promise<SavedSnapshot> {
    const points = (await this.points(collection)) ?? 0;
    const snapshot = await explained(
      `snapshot of ${collection}`,
      this.client.createSnapshot(collection, { wait: true }),
    );
    if (!snapshot) throw new Error(`Qdrant did not create a snapshot of ${collection}`);
    try {
      const response = await fetch(this.url(collection, `snapshots/${encodeURIComponent(snapshot.name)}`), {
        headers: this.headers,
      });
      if (!response.ok || !response.body) throw new Error(`downloading ${snapshot.name}: HTTP ${response.status}`);
      const handle = await open(file, "wx", 0o600);
      try {
        for await (const chunk of response.body) await handle.write(chunk);
        await handle.sync();
      } finally {
        await handle.close();
      }
      const { sha256, bytes } = await digest(file);
      if (snapshot.checksum && snapshot.checksum !== sha256) {
        throw new Error(`snapshot ${snapshot.name} arrived damaged (checksum mismatch)`);
      }
      return { sha256, bytes, points };
    } finally {
      await explained(
        `deleting ${snapshot.name}`,
        this.client.deleteSnapshot(collection, snapshot.name, { wait: true }),
      );
    }
  }

  /** Uploads a snapshot as `collection`, replacing it if it exists; Qdrant verifies the checksum. */
  async load(collection: string, file: string, sha256: string): Promise<void> {
    const form = new FormData();
    form.append("snapshot", await openAsBlob(file), basename(file));
    const query = new URLSearchParams({ wait: "true", priority: "snapshot", checksum: sha256 });
    const response = await fetch(`${this.url(collection, "snapshots/upload")}?${query}`, {
      method: "POST",
      headers: this.headers,
      body: form,
    });
    if (!response.ok) {
      const detail = ((await response.json().catch(() => ({}))) as { status?: { error?: string } }).status?.error;
      throw new Error(`restoring ${collection}: HTTP ${response.status}${detail ? ` ${detail}` : ""}`);
    }
  }

  private url(collection: string, tail: string): string {
    return `${this.baseUrl}/collections/${encodeURIComponent(collection)}/${tail}`;
  }
}

/** The client's errors say only "Bad Request"; Qdrant's reason is in the body. */
async function explained<T>(action: string, call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    const reason = (error as { data?: { status?: { error?: string } } }).data?.status?.error;
    throw new Error(`Qdrant, ${action}: ${reason ?? (error as Error).message}`);
  }
}
