/** A tiny JSON client for our management API that remembers every response body (for leak checks). */
export interface JsonResponse<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export function jsonClient(baseUrl: string) {
  const transcript: string[] = [];
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON fields and assert on them
  async function call<T = Record<string, any>>(
    method: string,
    path: string,
    options: { token?: string; body?: unknown } = {},
  ): Promise<JsonResponse<T>> {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const text = await res.text();
    transcript.push(text);
    return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : {}) as T, text };
  }
  return { call, transcript };
}
