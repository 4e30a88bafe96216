/**
 * One SDK client per base URL, built on first use (building one per request showed up in profiles). Clients hold
 * no user's key: each call passes its key in its own request headers (the Anthropic adapter's request options), so
 * no plaintext key outlives the call it was decrypted for. Base URLs come from configuration, so the map stays small.
 */
export function clientPerBaseUrl<T>(create: (baseUrl: string) => T): (baseUrl: string) => T {
  const clients = new Map<string, T>();
  return (baseUrl) => {
    let client = clients.get(baseUrl);
    if (!client) {
      client = create(baseUrl);
      clients.set(baseUrl, client);
    }
    return client;
  };
}
