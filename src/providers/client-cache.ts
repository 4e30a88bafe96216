import { createHash } from "node:crypto";

/**
 * Reuses SDK clients per (base URL, key): building one per request showed up in profiles. Bounded, oldest first
 * out. Entries are keyed by a hash, and the clients stay in this process's memory only, like the decrypted key
 * they were built for.
 */
export function clientCache<T>(create: (baseUrl: string, apiKey: string) => T, maxEntries = 1_000) {
  const clients = new Map<string, T>();
  return (baseUrl: string, apiKey: string): T => {
    const id = createHash("sha256").update(baseUrl).update("\0").update(apiKey).digest("base64url");
    let client = clients.get(id);
    if (!client) {
      client = create(baseUrl, apiKey);
      if (clients.size >= maxEntries) clients.delete(clients.keys().next().value as string);
      clients.set(id, client);
    }
    return client;
  };
}
